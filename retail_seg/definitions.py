"""The one Definitions object: every asset, the job over them all, the schedule, the sensor, the resources."""

import dagster as dg

from retail_seg import settings
from retail_seg.defs.automation import dead_runs_sensor, landing_sensor, nightly_schedule
from retail_seg.defs.ingest import LOADED, file_load
from retail_seg.defs.publication import BUILT, publication
from retail_seg.defs.resources import production_resources

ASSETS = [file_load, *BUILT, publication]

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


def build_definitions(timezone: str = "UTC") -> dg.Definitions:
    """Everything Dagster loads; `timezone` is the nightly schedule's."""
    return dg.Definitions(
        assets=ASSETS,
        jobs=[load_job, segmentation_job],
        schedules=[nightly_schedule(segmentation_job.name, timezone)],
        sensors=[landing_sensor(load_job, segmentation_job), dead_runs_sensor()],
        resources=production_resources(),
        # One process for the whole run: a process per step costs seconds of imports each (FIELD-NOTES.md).
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dg dev`, the dagster CLI and `python -m retail_seg`; the schedule's timezone comes from
    RETAIL_SEG_TIMEZONE."""
    return build_definitions(timezone=settings.TIMEZONE.value())
