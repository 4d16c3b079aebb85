"""The one Definitions object: every asset, the job that materializes them all, and the resources."""

import dagster as dg

from retail_seg.defs import eda, ingest, marts, reports, staging
from retail_seg.defs.resources import production_resources

ASSETS = [
    ingest.raw_transactions,
    staging.staged_transactions,
    staging.customers,
    marts.customer_features,
    eda.eda_summary,
    marts.model_features,
    marts.segmentation,
    marts.segment_profiles,
    reports.segment_report,
]

segmentation_job = dg.define_asset_job(
    "segment_customers",
    selection=dg.AssetSelection.all(),
    description="Load the source, clean it, build features, segment every customer and write the report.",
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[segmentation_job],
    resources=production_resources(),
    # One process for the whole run: a process per step costs seconds of imports each (FIELD-NOTES.md).
    executor=dg.in_process_executor,
)
