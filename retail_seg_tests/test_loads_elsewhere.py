"""Loads made by other processes: attempts that never share a folder, a lake collected only of finished
runs' loads, and a publication that waits for loads of its files already running."""

from __future__ import annotations

import threading
import time

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from retail_seg.core.lake import MANIFEST, Lake
from retail_seg.defs.runs import PARTITION, loads_in_flight, wait_for_runs


def test_attempts_of_one_load_never_share_a_folder(tmp_path):
    lake = Lake(tmp_path / "warehouse.duckdb")
    first, folder = lake.begin_attempt("day.csv@run1")
    (folder / "lines.parquet").write_bytes(b"the first attempt's files")
    second, again = lake.begin_attempt("day.csv@run1")
    third, _ = lake.begin_attempt("day.csv@run1")
    assert (first, second, third) == ("day.csv@run1", "day.csv~2@run1", "day.csv~3@run1")
    assert not (again / "lines.parquet").exists()
    assert (folder / "lines.parquet").read_bytes() == b"the first attempt's files"


def test_the_lake_keeps_every_load_of_a_run_still_going(tmp_path):
    lake = Lake(tmp_path / "warehouse.duckdb")
    for load_id in ("dead.csv@gone", "half.csv@going", "done.csv~2@going", "old.csv@gone", "kept.csv@gone"):
        _, folder = lake.begin_attempt(load_id)
        if load_id != "dead.csv@gone" and load_id != "half.csv@going":
            (folder / MANIFEST).write_text("{}")
    asked = []

    def unfinished(run_id: str) -> bool:
        asked.append(run_id)
        return run_id == "going"

    removed = lake.collect(keep={"kept.csv@gone"}, unfinished=unfinished)
    # A finished run's loads go, built or half built; a run still going keeps both kinds; `keep` stays.
    assert sorted(removed) == ["dead.csv@gone", "old.csv@gone"]
    assert sorted(p.name for p in lake.loads.iterdir()) == [
        "done.csv~2@going",
        "half.csv@going",
        "kept.csv@gone",
    ]
    assert set(asked) == {"gone", "going"}  # asked at the moment of collecting, per folder


def _load_run(instance: dg.DagsterInstance, key: str, status: dg.DagsterRunStatus, job: str = "load_files"):
    run = DagsterRun(job_name=job, run_id=f"{job}-{key}-{status.value}", status=status, tags={PARTITION: key})
    return instance.add_run(run)


def test_a_publication_waits_only_for_running_loads_of_its_files(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        running = _load_run(instance, "a.csv", dg.DagsterRunStatus.STARTED)
        _load_run(instance, "b.csv", dg.DagsterRunStatus.NOT_STARTED)  # not begun: it may start after
        _load_run(instance, "c.csv", dg.DagsterRunStatus.STARTED)  # another file
        _load_run(instance, "a.csv", dg.DagsterRunStatus.STARTED, job="segment_customers")  # not a load
        assert loads_in_flight(instance, {"a.csv", "b.csv"}) == [running.run_id]

        ends = threading.Timer(
            0.5, lambda: instance.report_run_failed(instance.get_run_by_id(running.run_id))
        )
        start = time.monotonic()
        ends.start()
        assert wait_for_runs(instance, [running.run_id], timeout=30, poll=0.05) == []
        assert 0.4 < time.monotonic() - start < 20
        still = _load_run(instance, "d.csv", dg.DagsterRunStatus.STARTED).run_id
        assert wait_for_runs(instance, [still], timeout=0.2, poll=0.05) == [still]
