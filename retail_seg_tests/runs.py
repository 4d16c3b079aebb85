"""Helpers for tests that run the pipeline as separate processes and compare what they published."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb

from retail_seg.core.warehouse import column_types, published_checksums, published_tables
from retail_seg_tests.pipeline import folder_digest
from retail_seg_tests.servers import REPO

# Columns that name the run or the moment, which differ between two runs on the same data.
RUN_SPECIFIC = {"run_id", "load_id", "loaded_at", "recorded_at", "parameters", "previous_run"}


def start_run(env: dict[str, str], source: Path, log: Path, **extra: str) -> subprocess.Popen:
    """`python -m retail_seg run` on `source`, in its own process group, writing its output to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "retail_seg", "run"],
        cwd=REPO,
        env={**env, "RETAIL_SEG_SOURCE": str(source), **extra},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(condition, timeout: float, what: str, poll: float = 0.05):
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(poll)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def started_step(home: Path, step: str, besides: list[str]) -> str | None:
    """The id of an unfinished run, not one of `besides`, that has started `step`, if one has."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            run_id = record.dagster_run.run_id
            if run_id in besides:
                continue
            records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
            if any(r.event_log_entry.step_key == step for r in records):
                return run_id
    return None


def run_status(home: Path, run_id: str) -> dg.DagsterRunStatus:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_run_by_id(run_id).status


def published_state(workdir: Path) -> tuple[dict, dict, dict]:
    """Checksums of every published table, of every file of the published report and of every export."""
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        tables = published_checksums(conn)
    return tables, folder_digest(workdir / "reports"), folder_digest(workdir / "exports")


def published_content(workdir: Path, decimals: int | None = None) -> dict[str, tuple]:
    """Every published table's rows, run ids and timestamps aside, as (rows, order-free hash); with
    `decimals`, floating-point values rounded to that many (sums over lines read in another order differ
    in their last bits)."""
    content = {}
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        for table in published_tables(conn):
            kept = [
                f'round("{name}", {decimals})'
                if decimals is not None and kind in ("DOUBLE", "FLOAT")
                else f'"{name}"'
                for name, kind in column_types(conn, table)
                if name not in RUN_SPECIFIC
            ]
            sql = f"SELECT count(*), sum(hash(row({', '.join(kept)}))::HUGEINT) FROM {table}"
            content[str(table)] = conn.execute(sql).fetchall()[0]
    return content


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process and its group, as the OOM killer or a power cut would, and reap it."""
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing left to kill
        os.killpg(process.pid, 9)
    process.wait(timeout=30)


if __name__ == "__main__":  # python -m retail_seg_tests.runs FOLDER: its published state, as JSON
    print(json.dumps(published_state(Path(sys.argv[1]))))
