"""Automation: the nightly re-segmentation and the landing-folder sensor."""

import hashlib
import json
import time

import dagster as dg

from retail_seg.core.lake import file_key
from retail_seg.core.landing import scan_landing
from retail_seg.defs.ingest import SOURCE_FILES
from retail_seg.defs.resources import LandingFolder
from retail_seg.defs.runs import release_dead_runs

NIGHTLY_CRON = "0 2 * * *"
SHA256_TAG = "retail_seg/sha256"
SETTLE_SECONDS = 10.0


def nightly_schedule(job_name: str, timezone: str) -> dg.ScheduleDefinition:
    """Re-segment every customer at 02:00 in `timezone`, on whatever the source resource points at."""
    return dg.ScheduleDefinition(
        name="nightly_segmentation",
        job_name=job_name,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Re-segment every customer each night at 02:00.",
    )


def _unsuccessful_run(instance: dg.DagsterInstance, sha256: str) -> str | None:
    """The latest run on this content when it ended without success (failed or canceled): content never
    run, running, or run well is not retried."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={SHA256_TAG: sha256}), limit=1)
    ended = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    return runs[0].run_id if runs and runs[0].status in ended else None


def landing_sensor(load_job, publish_job, settle_seconds: float = SETTLE_SECONDS) -> dg.SensorDefinition:
    """A sensor that loads each new or changed file of the landing folder as its own partition, then
    re-segments the whole history once."""

    @dg.sensor(
        name="incoming_files",
        jobs=[load_job, publish_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Loads each new or changed export in the landing folder (a partition per file name, "
        "runs keyed by its SHA-256; a file whose load failed runs again when it changes or is touched), "
        "then one run re-segments the whole history.",
    )
    def incoming_files(context: dg.SensorEvaluationContext, landing: LandingFolder):
        before = json.loads(context.cursor) if context.cursor else {}
        scan = scan_landing(landing.resolve(), before, now=time.time(), settle_seconds=settle_seconds)
        for reason in scan.ignored:
            context.log.info(reason)
        # Contents already requested, by a file still here: the same content under a second name waits.
        requested = {
            entry[2] for path, entry in before.get("files", {}).items() if path in scan.seen["files"]
        }
        requests = []
        for arrival in scan.arrivals:
            retry = _unsuccessful_run(context.instance, arrival.sha256)
            if arrival.sha256 in requested and not retry:
                continue
            requested.add(arrival.sha256)
            requests.append(
                dg.RunRequest(
                    # The checksum is the key, and Dagster never launches one key twice for this sensor;
                    # a retry of content whose run failed is keyed by that run, so it happens once per
                    # failure, whatever the file's name or modification time.
                    run_key=f"{arrival.sha256}:after-{retry}" if retry else arrival.sha256,
                    job_name=load_job.name,
                    partition_key=file_key(arrival.path),
                    run_config={"ops": {"file_load": {"config": {"source": str(arrival.path)}}}},
                    tags={"retail_seg/source": arrival.path.name, SHA256_TAG: arrival.sha256},
                )
            )
        if requests:  # after the loads (the queue keeps their order), one publication of the whole history
            keys = ",".join(r.run_key for r in requests)
            requests.append(
                dg.RunRequest(
                    run_key=f"publish:{hashlib.sha256(keys.encode()).hexdigest()}", job_name=publish_job.name
                )
            )
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(scan.seen),
            skip_reason=None if requests else f"no new or changed export in {landing.resolve()}",
            dynamic_partitions_requests=[
                SOURCE_FILES.build_add_request([r.partition_key for r in requests if r.partition_key])
            ]
            if requests
            else [],
        )

    return incoming_files


def dead_runs_sensor() -> dg.SensorDefinition:
    """A sensor that releases runs whose process died, so the run queue and the schedule go on."""

    @dg.sensor(
        name="dead_runs",
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks failed the runs whose process is gone (OOM, kill -9, reboot) and frees what "
        "they held, so a dead run never blocks the queue.",
    )
    def dead_runs(context: dg.SensorEvaluationContext):
        released = release_dead_runs(context.instance, context.log.info)
        return dg.SkipReason(
            f"released {len(released)} dead run(s): {', '.join(released)}" if released else "no dead runs"
        )

    return dead_runs
