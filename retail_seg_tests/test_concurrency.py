"""Two runs launched together both succeed, one step at a time on the warehouse, with no lock error."""

import subprocess
import sys

import dagster as dg

from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.servers import REPO, project_environment


def test_two_runs_at_once_take_turns_on_the_warehouse(tmp_path, monkeypatch):
    source, _ = write_synthetic(tmp_path / "source", customers=300, seed=4)
    env = project_environment(tmp_path, source)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    # The instance's storage exists before the runs, as it does after the first `make run` or `make ui`:
    # two processes creating a brand-new SQLite storage at the same moment race on its schema.
    dg.DagsterInstance.get().dispose()
    command = [sys.executable, "-m", "retail_seg", "run"]
    runs = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "succeeded" in output
        assert "Could not set lock" not in output and "IOException" not in output  # DuckDB's lock error

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records()
        assert len(records) == 2 and all(r.dagster_run.is_success for r in records)
        spans = []
        for record in records:
            events = [e for e in instance.all_logs(record.dagster_run.run_id) if e.is_dagster_event]
            starts = {
                e.step_key: e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_START"
            }
            ends = {
                e.step_key: e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_SUCCESS"
            }
            spans += [(starts[step], ends[step], record.dagster_run.run_id) for step in starts]
    assert len(spans) == 2 * 11  # every step of both runs (multi-assets are one step each)
    for start, end, run in spans:
        for other_start, other_end, other in spans:
            if run != other:
                assert end <= other_start or other_end <= start, "two runs held the warehouse at once"
