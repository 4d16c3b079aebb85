"""A warehouse made before files added up to a history upgrades in place on its first run: its lines
become the history's first load, its audit trail goes on, and a new file adds to what it held."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile

import pytest

from retail_seg.core.lake import Lake
from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.pipeline import query
from retail_seg_tests.servers import REPO, project_environment

# Mains before the lake, whose warehouses keep the staging layer as tables and raw lines as text: the one
# the issue measured, and the last before the lake landed.
BEFORE_THE_LAKE = (
    "b46bcdb04a49bb7d20998dcff36f88226fbecd60",
    "d0ae1d4e9113f8fa39173ea117b3dcd3bbca722a",
)


def _checkout(commit: str, target) -> None:
    """The package as it was at `commit`, from the repository's own history."""
    archive = target.with_suffix(".tar")
    made = subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), commit, "retail_seg"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:  # a shallow clone without that commit: nothing to upgrade from here
        pytest.skip(f"commit {commit[:7]} is not in this clone: {made.stderr.strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")


def _run(env: dict[str, str], code, log) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "retail_seg", "run"],
        cwd=code,
        env={**env, "PYTHONPATH": str(code)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        timeout=300,
    )
    assert done.returncode == 0, log.read_text()[-3000:]


@pytest.mark.parametrize("commit", BEFORE_THE_LAKE, ids=lambda commit: commit[:7])
def test_a_warehouse_from_before_the_lake_upgrades_in_place(commit, tmp_path):
    old = tmp_path / "old"
    _checkout(commit, old)
    first, _ = write_synthetic(tmp_path / "first", customers=300, seed=21)
    second, _ = write_synthetic(tmp_path / "second", customers=200, seed=22)
    workdir = tmp_path / "w"
    env = project_environment(workdir, first)
    _run(env, old, tmp_path / "old.log")
    [(old_run, old_lines)] = query(
        workdir, "SELECT (SELECT run_id FROM audit.runs), (SELECT count(*) FROM staging.transactions)"
    )
    [(old_assignments,)] = query(workdir, "SELECT count(*) FROM audit.segment_history")

    # The first run of this code: over a folder holding the old export again and a new one.
    exports = tmp_path / "exports"
    exports.mkdir()
    shutil.copy(first, exports / "first.csv")
    shutil.copy(second, exports / "second.csv")
    _run({**env, "RETAIL_SEG_SOURCE": str(exports)}, REPO, tmp_path / "new.log")

    lake = Lake(workdir / "warehouse.duckdb")
    keys = sorted(lake.accepted())
    assert keys == ["before-the-lake", "first.csv", "second.csv"]
    adopted = lake.accepted()["before-the-lake"]
    assert adopted.clean == old_lines  # the old staging table, taken in whole
    # The old export loaded again repeats the adopted lines, each counted once: the history holds every
    # adopted line, none of the old export's second copy, and the new export's lines.
    by_load = dict(query(workdir, "SELECT load_id, count(*) FROM staging.transactions GROUP BY 1"))
    loads = {key: record.load_id for key, record in lake.accepted().items()}
    assert by_load[loads["before-the-lake"]] == old_lines
    assert loads["first.csv"] not in by_load
    assert (
        by_load[loads["second.csv"]] > 0 and sum(by_load.values()) == old_lines + by_load[loads["second.csv"]]
    )
    # The audit trail goes on: the old run and its assignments are kept, the new run is recorded beside it.
    runs = [run for (run,) in query(workdir, "SELECT run_id FROM audit.runs ORDER BY recorded_at")]
    assert runs[0] == old_run and len(runs) == 2
    [(kept,)] = query(workdir, f"SELECT count(*) FROM audit.segment_history WHERE run_id = '{old_run}'")
    assert kept == old_assignments
    # The old text copy of every raw line is gone: the history's lineage is each load's file and row.
    [(tables,)] = query(
        workdir,
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'raw' AND table_name = 'transactions'",
    )
    assert tables == 0
