"""The one Definitions object: every asset, the job over them all, the schedule, the sensor, the resources."""

import dagster as dg

from retail_seg import settings
from retail_seg.core.alerts import AlertTargets
from retail_seg.defs.alerting import alerting_sensors, with_freshness
from retail_seg.defs.automation import dead_runs_sensor, landing_sensor, nightly_schedule
from retail_seg.defs.distributed import load_executor
from retail_seg.defs.ingest import LOADED, file_load
from retail_seg.defs.publication import BUILT, publication
from retail_seg.defs.resources import production_resources
from retail_seg.defs.runs import LOAD_JOB

ASSETS = [file_load, *BUILT, publication]
STALE_AFTER_HOURS = float(settings.STALE_AFTER_HOURS.default)

# The instance's run queue reads it: publications go one at a time, loads side by side.
KIND_TAG = "retail_seg/kind"
load_job = dg.define_asset_job(
    LOAD_JOB,
    selection=dg.AssetSelection.assets(*LOADED),
    description="Take one file into the history (a partition per file): raw and staging gates, Parquet in "
    "the lake.",
    tags={KIND_TAG: "load"},
)
segmentation_job = dg.define_asset_job(
    "segment_customers",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*LOADED),
    description="Load the source, clean it, build features, segment every customer, report, record the run, "
    "and publish it all at once.",
    tags={KIND_TAG: "publication"},
)


def build_definitions(
    timezone: str = "UTC", alerts: AlertTargets | None = None, stale_after_hours: float = STALE_AFTER_HOURS
) -> dg.Definitions:
    """Everything Dagster loads; `timezone` is the nightly schedule's, `alerts` where alerts go (nowhere by
    default), and the published segmentation is stale `stale_after_hours` after its publication."""
    # Loads share nothing, so they may run anywhere (RETAIL_SEG_EXECUTOR); a publication is one process.
    loads = dg.define_asset_job(
        LOAD_JOB,
        selection=load_job.selection,
        description=load_job.description,
        tags=load_job.tags,
        executor_def=load_executor(),
    )
    return dg.Definitions(
        assets=with_freshness(ASSETS, stale_after_hours),
        jobs=[loads, segmentation_job],
        schedules=[nightly_schedule(segmentation_job.name, timezone)],
        sensors=[
            landing_sensor(loads, segmentation_job),
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


def load_files_job() -> dg.JobDefinition:
    """The load job as Dagster rebuilds it in another process (a Celery worker): `dg.reconstructable`."""
    return defs().resolve_job_def(LOAD_JOB)
