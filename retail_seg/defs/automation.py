"""Automation: the nightly re-segmentation and the landing-folder sensor."""

import json
import time

import dagster as dg

from retail_seg.core.landing import scan_landing
from retail_seg.defs.resources import LandingFolder

NIGHTLY_CRON = "0 2 * * *"
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


def landing_sensor(job_name: str, settle_seconds: float = SETTLE_SECONDS) -> dg.SensorDefinition:
    """A sensor that starts one run per new or changed file in the landing folder."""

    @dg.sensor(
        name="incoming_files",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One run per new or changed export in the landing folder, keyed by its SHA-256.",
    )
    def incoming_files(context: dg.SensorEvaluationContext, landing: LandingFolder):
        seen = json.loads(context.cursor) if context.cursor else {}
        arrivals, seen = scan_landing(landing.resolve(), seen, now=time.time(), settle_seconds=settle_seconds)
        for arrival in arrivals:
            yield dg.RunRequest(
                # The checksum is the key: Dagster never launches the same key twice for this sensor.
                run_key=arrival.sha256,
                run_config={"ops": {"raw_transactions": {"config": {"source": str(arrival.path)}}}},
                tags={"retail_seg/source": arrival.path.name, "retail_seg/sha256": arrival.sha256},
            )
        context.update_cursor(json.dumps(seen))

    return incoming_files
