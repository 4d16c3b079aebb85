"""Runs whose process died: noticed, marked failed and released, so that they never block the next run."""

import time
from collections.abc import Callable

import dagster as dg

from retail_seg.core.publication import Owner

PUBLICATION = dg.AssetKey("publication")
PARTITION = "dagster/partition"
LOAD_JOB = "load_files"  # the job of loads: a run per file
# What a load of one file builds (a partition of each, in the lake): a run of these alone publishes nothing.
LOADS = frozenset(dg.AssetKey(name) for name in ("raw_transactions", "clean_transactions", "rejected_rows"))
# Runs that may still be writing a load into the lake.
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A run stuck starting is the instance's run monitoring's to fail (start_timeout_seconds).
UNFINISHED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def release_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None]) -> list[str]:
    """Mark failed every unfinished run whose process is gone, free its concurrency slots, and say so.

    A run records its process when it starts (`Warehouse.setup_for_execution`); a run killed by the OOM
    killer, `kill -9` or a reboot stays STARTED in the instance and would count against the run queue's
    limit forever. Runs on another host are left to that host (this one cannot look at its processes).
    """
    released = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        owner = Owner.from_tags(dict(run.tags))
        # Tags copied from a parent run (a re-execution) describe the parent's process, not this run's.
        if owner is None or owner.run_id != run.run_id or owner.alive() is not False:
            continue
        reason = f"{owner.describe()} is gone: its process ended without finishing the run"
        instance.report_run_failed(run, message=f"Marked failed by retail_seg: {reason}.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log(f"released a dead run: {reason}; marked failed, its concurrency slots freed")
        released.append(run.run_id)
    return released


def loads_in_flight(instance: dg.DagsterInstance, keys: set[str]) -> list[str]:
    """The runs loading one of the files `keys` (their partitions) right now. Queued ones are not counted:
    with one run at a time they could only start after the run asking."""
    started = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=started))
    return [run.run_id for run in runs if run.job_name == LOAD_JOB and run.tags.get(PARTITION) in keys]


def wait_for_runs(
    instance: dg.DagsterInstance, run_ids: list[str], timeout: float, poll: float = 1.0
) -> list[str]:
    """Wait until none of `run_ids` is unfinished, at most `timeout` seconds; the ones still unfinished."""
    deadline = time.monotonic() + timeout
    while True:
        unfinished = [
            run_id
            for run_id in run_ids
            if (run := instance.get_run_by_id(run_id)) is not None and run.status in IN_PROGRESS
        ]
        if not unfinished or time.monotonic() >= deadline:
            return unfinished
        time.sleep(poll)
