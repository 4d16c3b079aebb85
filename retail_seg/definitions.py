"""The one Definitions object: every asset, the job over them all, the schedule, the sensor, the resources."""

import dagster as dg

from retail_seg import settings
from retail_seg.core.alerts import AlertTargets
from retail_seg.defs.alerting import alerting_sensors, with_freshness
from retail_seg.defs.automation import dead_runs_sensor, landing_sensor, nightly_schedule
from retail_seg.defs.ingest import LOADED, file_load
from retail_seg.defs.publication import BUILT, publication
from retail_seg.defs.resources import production_resources

ASSETS = [file_load, *BUILT, publication]
STALE_AFTER_HOURS = float(settings.STALE_AFTER_HOURS.default)

load_job = dg.define_asset_job(
    "load_files",
    selection=dg.AssetSelection.assets(*LOADED),
    description="Take one file into the history (a partition per file): raw and staging gates, Parquet in "
    "the lake.",
)
segmentation_job = dg.define_asset_job(
    "segment_customers",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*LOADED),
    description="Load the source, clean it, build features, segment every customer, report, record the run, "
    "and publish it all at once.",
)


def build_definitions(
    timezone: str = "UTC", alerts: AlertTargets | None = None, stale_after_hours: float = STALE_AFTER_HOURS
) -> dg.Definitions:
    """Everything Dagster loads; `timezone` is the nightly schedule's, `alerts` where alerts go (nowhere by
    default), and the published segmentation is stale `stale_after_hours` after its publication."""
    return dg.Definitions(
        assets=with_freshness(ASSETS, stale_after_hours),
        jobs=[load_job, segmentation_job],
        schedules=[nightly_schedule(segmentation_job.name, timezone)],
        sensors=[
            landing_sensor(load_job, segmentation_job),
            dead_runs_sensor(),
            *alerting_sensors(segmentation_job, alerts or AlertTargets(), stale_after_hours),
        ],
        resources=production_resources(),
        # One process for the whole run: a process per step costs seconds of imports each (FIELD-NOTES.md).
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dg dev`, the dagster CLI and `python -m retail_seg`; the schedule's timezone comes from
    RETAIL_SEG_TIMEZONE, the alerts' targets and the freshness window from RETAIL_SEG_ALERT_* and
    RETAIL_SEG_STALE_AFTER_HOURS."""
    return build_definitions(
        timezone=settings.TIMEZONE.value(),
        alerts=settings.alert_targets(),
        stale_after_hours=settings.stale_after_hours(),
    )
