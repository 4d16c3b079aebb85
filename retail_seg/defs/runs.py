"""Runs whose process died: noticed, marked failed and released, so that they never block the next run."""

from collections.abc import Callable

import dagster as dg

from retail_seg.core.publication import Owner

PUBLICATION = dg.AssetKey("publication")
# What a load of one file builds (a partition of each, in the lake): a run of these alone publishes nothing.
LOADS = frozenset(dg.AssetKey(name) for name in ("raw_transactions", "clean_transactions", "rejected_rows"))
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
