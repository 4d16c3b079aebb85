"""Two runs launched together both succeed, taking turns on the warehouse, with no lock error."""

import subprocess
import sys

import dagster as dg

from retail_seg.core.synthetic import write_synthetic
from retail_seg.defs.resources import HELD, RELEASED
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

    # Each step logs when it takes and gives back the warehouse; no two runs may hold it at once. (Step
    # spans may overlap: Dagster's SQLite storage can give the pool's one slot to two claims racing at
    # the same instant, which is why the warehouse has a file lock of its own.)
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records()
        assert len(records) == 2 and all(r.dagster_run.is_success for r in records)
        sessions = []
        for record in records:
            messages = [
                (log.timestamp, log.user_message)
                for log in instance.all_logs(record.dagster_run.run_id)
                if not log.is_dagster_event
            ]
            held = [t for t, message in messages if message.startswith(HELD)]
            released = [t for t, message in messages if message == RELEASED]
            assert len(held) == len(released) >= 11  # every step opens the warehouse
            sessions += [
                (start, end, record.dagster_run.run_id) for start, end in zip(held, released, strict=True)
            ]
    for start, end, run in sessions:
        for other_start, other_end, other in sessions:
            if run != other:
                assert end <= other_start or other_end <= start, "two runs held the warehouse at once"
