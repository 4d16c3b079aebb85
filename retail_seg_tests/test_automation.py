"""The nightly schedule and the landing-folder sensor tick as promised."""

import datetime as dt
import os
import shutil
import time

import dagster as dg
import pytest

from retail_seg.core.landing import Scan, scan_landing
from retail_seg.definitions import build_definitions, segmentation_job
from retail_seg.defs.automation import landing_sensor
from retail_seg.defs.resources import LandingFolder


def test_nightly_schedule_runs_the_job_at_two_in_the_configured_timezone():
    schedule = build_definitions(timezone="Europe/Berlin").resolve_schedule_def("nightly_segmentation")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "segment_customers"
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 1, 5, 2, 0))
    requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1


@pytest.fixture
def tick(tmp_path):
    """Evaluate the sensor once, carrying its cursor from tick to tick like the daemon does."""
    sensor = landing_sensor(segmentation_job.name, settle_seconds=0)
    state = {"cursor": None}

    def evaluate() -> list[dg.RunRequest]:
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(
                instance=instance,
                cursor=state["cursor"],
                resources={"landing": LandingFolder(path=str(tmp_path))},
            )
            result = sensor.evaluate_tick(context)
        state["cursor"] = result.cursor
        return result.run_requests

    return evaluate


def test_sensor_runs_each_new_content_once(tick, tmp_path):
    assert tick() == []
    export = tmp_path / "export_2025_12.csv"
    export.write_text("invoice_no,quantity\n1,2\n")
    [request] = tick()
    assert request.run_config["ops"]["raw_transactions"]["config"]["source"] == str(export)
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


def test_files_still_being_written_wait_for_the_next_look(tmp_path):
    (tmp_path / "export.csv").write_text("a\n")
    scan = scan_landing(tmp_path, {}, now=time.time(), settle_seconds=60)
    assert scan.arrivals == [] and scan.seen["files"] == {}
    later = scan_landing(tmp_path, scan.seen, now=time.time() + 61, settle_seconds=60)
    assert [a.path.name for a in later.arrivals] == ["export.csv"]


def test_missing_landing_folder_is_quiet(tmp_path):
    assert scan_landing(tmp_path / "absent", {}, now=time.time()) == Scan([], [], {"files": {}})
