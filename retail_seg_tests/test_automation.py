"""The nightly schedule and the landing-folder sensor tick as promised."""

import datetime as dt
import json
import os
import shutil
import time

import dagster as dg
import pytest

from retail_seg.core.lake import Lake
from retail_seg.core.landing import Scan, scan_landing
from retail_seg.core.mappings import SourceFormatError
from retail_seg.core.synthetic import write_synthetic
from retail_seg.definitions import ASSETS, build_definitions, load_job, segmentation_job
from retail_seg.defs.automation import SHA256_TAG, landing_sensor
from retail_seg.defs.ingest import SOURCE_FILES
from retail_seg.defs.resources import LandingFolder
from retail_seg_tests.pipeline import query, resources


def test_nightly_schedule_runs_the_job_at_two_in_the_configured_timezone():
    schedule = build_definitions(timezone="Europe/Berlin").resolve_schedule_def("nightly_segmentation")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "segment_customers"
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 1, 5, 2, 0))
    requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def tick(tmp_path, instance):
    """Evaluate the sensor once, carrying its cursor from tick to tick like the daemon does."""
    sensor = landing_sensor(load_job, segmentation_job, settle_seconds=0)
    state = {"cursor": None, "skipped": None, "partitions": []}
    definitions = build_definitions()

    def evaluate() -> list[dg.RunRequest]:
        """The loads a tick asks for; after them, one publication of the whole history."""
        context = dg.build_sensor_context(
            instance=instance,
            cursor=state["cursor"],
            resources={"landing": LandingFolder(path=str(tmp_path))},
            definitions=definitions,
            instance_ref=instance.get_ref(),  # as the daemon gives it: partition keys are checked
        )
        result = sensor.evaluate_tick(context)
        state["cursor"], state["skipped"] = result.cursor, result.skip_message
        requests = result.run_requests
        if not requests:
            return []
        *loads, publication = requests
        assert {r.job_name for r in loads} == {load_job.name}
        assert publication.job_name == segmentation_job.name and publication.partition_key is None
        added = [key for r in result.dynamic_partitions_requests for key in r.partition_keys]
        assert added == [r.partition_key for r in loads]  # each load's partition exists before its run
        state["partitions"] += added
        return loads

    evaluate.state = state
    return evaluate


def _failed_run(instance: dg.DagsterInstance, sha256: str) -> None:
    """A run on this content that failed, as the sensor finds it in the instance."""

    @dg.asset
    def refused() -> None:
        raise dg.Failure("refused")

    dg.materialize([refused], instance=instance, tags={SHA256_TAG: sha256}, raise_on_error=False)


def test_sensor_runs_each_new_content_once(tick, tmp_path):
    assert tick() == []
    export = tmp_path / "export_2025_12.csv"
    export.write_text("invoice_no,quantity\n1,2\n")
    [request] = tick()
    assert request.run_config["ops"]["file_load"]["config"]["source"] == str(export)
    assert request.partition_key == "export_2025_12.csv"
    assert request.tags["retail_seg/source"] == "export_2025_12.csv"
    assert tick() == []  # the same file again: nothing
    shutil.copy(export, tmp_path / "export_copy.csv")
    assert tick() == []  # the same content under another name: nothing
    export.write_text("invoice_no,quantity\n1,3\n")
    os.utime(export, (time.time() - 5, time.time() - 5))  # a new modification time, in the past
    [changed] = tick()
    assert changed.run_key != request.run_key  # changed content: a new run
    (tmp_path / "notes.txt.bak").write_text("not an export")
    assert tick() == []
    assert "no new or changed export" in tick.state["skipped"]  # an empty tick says why


def test_a_file_whose_run_failed_runs_again_when_fixed_or_touched(tick, tmp_path, instance):
    export = tmp_path / "export.csv"
    export.write_text("invoice_no,quantity\n1,2\n")
    [first] = tick()
    _failed_run(instance, first.run_key)
    assert tick() == []  # untouched: its run failed, but nothing says to try again
    os.utime(export, (time.time() - 2, time.time() - 2))  # touched: asked to run it again
    [again] = tick()
    assert again.tags[SHA256_TAG] == first.run_key and again.run_key != first.run_key
    _failed_run(instance, first.run_key)  # the retry failed too
    shutil.copy(export, tmp_path / "renamed.csv")  # the same content under a new name: asked again
    [renamed] = tick()
    assert renamed.tags[SHA256_TAG] == first.run_key and renamed.run_key not in (first.run_key, again.run_key)
    export.write_text("invoice_no,quantity\n1,3\n")  # fixed: new content, a run of its own
    os.utime(export, (time.time() - 1, time.time() - 1))
    [fixed] = tick()
    assert fixed.run_key != first.run_key


def test_the_cursor_forgets_removed_files_and_stays_as_small_as_the_folder(tick, tmp_path):
    exports = [tmp_path / f"export_{i}.csv" for i in range(6)]
    for i, export in enumerate(exports):
        export.write_text(f"invoice_no,quantity\n{i},2\n")
    assert len(tick()) == 6

    def remembered() -> set[str]:
        return set(json.loads(tick.state["cursor"])["files"])

    assert remembered() == {str(e) for e in exports}
    for export in exports[1:]:
        export.unlink()
    assert tick() == [] and remembered() == {str(exports[0])}  # as small as the folder
    exports[0].unlink()
    assert tick() == [] and json.loads(tick.state["cursor"]) == {"files": {}}


def test_links_are_never_followed_out_of_the_landing_folder(tick, tmp_path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secrets.csv"
    outside.write_text("DB_PASSWORD=hunter2,API_KEY=abc\n1,2\n")
    (tmp_path / "export.csv").symlink_to(outside)
    assert tick() == []
    scan = scan_landing(tmp_path, {}, now=time.time(), settle_seconds=0)
    assert scan.arrivals == []
    assert scan.ignored == ["export.csv: ignored, a link; only files inside the landing folder are read"]
    # A run pointed at the link by hand is refused too, without a word of what the link leads to.
    with pytest.raises(SourceFormatError, match="only regular files inside the landing folder") as refused:
        LandingFolder(path=str(tmp_path)).admit(tmp_path / "export.csv")
    assert "hunter2" not in str(refused.value) and "DB_PASSWORD" not in str(refused.value)


def test_files_still_being_written_wait_for_the_next_look(tmp_path):
    (tmp_path / "export.csv").write_text("a\n")
    scan = scan_landing(tmp_path, {}, now=time.time(), settle_seconds=60)
    assert scan.arrivals == [] and scan.seen["files"] == {}
    later = scan_landing(tmp_path, scan.seen, now=time.time() + 61, settle_seconds=60)
    assert [a.path.name for a in later.arrivals] == ["export.csv"]


def test_missing_landing_folder_is_quiet(tmp_path):
    assert scan_landing(tmp_path / "absent", {}, now=time.time()) == Scan([], [], {"files": {}})


def test_a_landed_file_is_loaded_by_its_own_run_then_published_with_the_history(tmp_path, instance):
    """What the sensor's requests do: a load run takes the landed file into the lake as its partition
    (without the warehouse), a refused one changes nothing, and the publication adds it to the history."""
    source, _ = write_synthetic(tmp_path / "source", customers=150, seed=31)
    landed, _ = write_synthetic(tmp_path / "landed", customers=120, seed=32)
    daily = tmp_path / "incoming" / "daily.csv"
    daily.parent.mkdir()
    shutil.copy(landed, daily)
    broken = tmp_path / "incoming" / "broken.csv"
    broken.write_text("invoice_no,quantity\n1,2\n")
    definitions = dg.Definitions(
        assets=ASSETS, jobs=[load_job, segmentation_job], resources=resources(source, tmp_path)
    )
    instance.add_dynamic_partitions(SOURCE_FILES.name, ["daily.csv", "broken.csv"])
    loads = definitions.resolve_job_def(load_job.name)

    def load(path):
        config = {"ops": {"file_load": {"config": {"source": str(path)}}}}
        return loads.execute_in_process(
            partition_key=path.name, run_config=config, instance=instance, raise_on_error=False
        )

    loaded = load(daily)
    assert loaded.success
    lake = Lake(tmp_path / "warehouse.duckdb")
    assert lake.accepted()["daily.csv"].run_id == loaded.run_id
    assert not (tmp_path / "warehouse.duckdb").exists()  # a load never opens the warehouse
    refused = load(broken)
    assert not refused.success
    [gate] = [e for e in refused.get_asset_check_evaluations() if not e.passed]
    assert gate.check_name == "raw_gate" and "missing column" in gate.description
    assert set(lake.accepted()) == {"daily.csv"}
    latest = instance.get_latest_materialization_event(dg.AssetKey("clean_transactions"))
    assert latest.dagster_event.partition == "daily.csv" and latest.run_id == loaded.run_id

    published = definitions.resolve_job_def(segmentation_job.name).execute_in_process(instance=instance)
    assert published.success
    assert dict(query(tmp_path, "SELECT key, run_id FROM raw.loads")) == {
        "daily.csv": loaded.run_id,  # loaded by its own run, not again
        "transactions.csv": published.run_id,  # the configured source, caught up by the publication
    }
    events = query(tmp_path, "SELECT event, key FROM audit.load_events ORDER BY 1, 2")
    assert events == [("loaded", "daily.csv"), ("loaded", "transactions.csv"), ("refused", "broken.csv")]


def test_a_run_over_a_folder_makes_each_file_a_partition_and_a_refused_one_leaves_the_others_green(
    tmp_path, instance
):
    """`make run` over a folder: each new file becomes a partition of the raw and staging layers and is
    materialized there; a later run loads only what is new, and a refused file fails its own partition's
    gate while the others keep their materializations and the publication goes ahead."""
    folder = tmp_path / "monthly"
    for name, seed in (("2024-01.csv", 41), ("2024-02.csv", 42)):
        made, _ = write_synthetic(tmp_path / name, customers=120, seed=seed)
        folder.mkdir(exist_ok=True)
        shutil.copy(made, folder / name)
    definitions = dg.Definitions(
        assets=ASSETS, jobs=[segmentation_job], resources=resources(folder, tmp_path)
    )
    publish = definitions.resolve_job_def(segmentation_job.name)

    first = publish.execute_in_process(instance=instance, raise_on_error=False)
    assert first.success
    files = {"2024-01.csv", "2024-02.csv"}
    assert set(instance.get_dynamic_partitions(SOURCE_FILES.name)) == files
    for asset in ("raw_transactions", "clean_transactions"):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == files
    loaded_by = {
        event.event_log_entry.dagster_event.partition: event.run_id
        for event in instance.fetch_materializations(dg.AssetKey("clean_transactions"), limit=10).records
    }
    assert loaded_by == dict.fromkeys(files, first.run_id)

    (folder / "2024-03.csv").write_text("invoice_no,quantity\n1,2\n")  # not an export: refused
    second = publish.execute_in_process(instance=instance, raise_on_error=False)
    assert second.success  # the publication over the accepted history goes ahead
    assert set(instance.get_dynamic_partitions(SOURCE_FILES.name)) == files | {"2024-03.csv"}
    assert instance.get_materialized_partitions(dg.AssetKey("clean_transactions")) == files
    refused = [
        (e.check_name, e.partition)
        for e in second.get_asset_check_evaluations()
        if not e.passed and e.partition
    ]
    assert refused == [("raw_gate", "2024-03.csv")]
    again = instance.fetch_materializations(dg.AssetKey("clean_transactions"), limit=10).records
    assert {e.run_id for e in again} == {first.run_id}  # nothing loaded twice
    assert dict(query(tmp_path, "SELECT key, run_id FROM raw.loads")) == dict.fromkeys(files, first.run_id)


def test_a_backfill_of_chosen_files_reloads_them(tmp_path, instance):
    """A backfill over chosen partitions loads those files again, whatever the lake held: each gets a new
    load in force (the old one superseded), and the publication counts its lines once."""
    source, _ = write_synthetic(tmp_path / "source", customers=120, seed=51)
    chosen = tmp_path / "incoming" / "chosen.csv"
    chosen.parent.mkdir()
    shutil.copy(source, chosen)
    definitions = dg.Definitions(
        assets=ASSETS, jobs=[load_job, segmentation_job], resources=resources(chosen, tmp_path)
    )
    instance.add_dynamic_partitions(SOURCE_FILES.name, ["chosen.csv"])
    loads = definitions.resolve_job_def(load_job.name)
    config = {"ops": {"file_load": {"config": {"source": str(chosen)}}}}
    lake = Lake(tmp_path / "warehouse.duckdb")
    load_ids = []
    for _ in range(2):
        done = loads.execute_in_process(
            partition_key="chosen.csv", run_config=config, instance=instance, raise_on_error=False
        )
        assert done.success
        load_ids.append(lake.accepted()["chosen.csv"].load_id)
        assert lake.accepted()["chosen.csv"].run_id == done.run_id
    assert load_ids[0] != load_ids[1]  # loaded again, not skipped as already held
    published = definitions.resolve_job_def(segmentation_job.name).execute_in_process(instance=instance)
    assert published.success
    [(loaded, lines, across)] = query(
        tmp_path,
        "SELECT list(DISTINCT load_id), count(*), (SELECT count(*) FROM staging.rejected_across_loads) "
        "FROM staging.transactions",
    )
    assert loaded == [load_ids[1]]  # once, from the load in force
    assert lines + across == lake.accepted()["chosen.csv"].clean
