"""Publication: the last step of every run, which makes everything the run built visible at once."""

import dagster as dg

from retail_seg.defs import audit, eda, exports, marts, reports, staging, value
from retail_seg.defs.metadata import DATA_ENGINEERING, layer_tags
from retail_seg.defs.resources import Warehouse
from retail_seg.defs.runs import IN_PROGRESS

BUILT = [
    staging.transaction_history,
    staging.customers,
    marts.customer_features,
    value.customer_value,
    eda.eda_summary,
    marts.model_features,
    marts.segmentation,
    marts.segment_profiles,
    audit.segment_history,
    audit.segment_migration,
    reports.segment_report,
    exports.audiences,
]


@dg.asset(
    # Every asset a run builds: in any selection, the publication is the step after all of them.
    deps=[key for built in BUILT for key in built.keys],
    group_name="audit",
    kinds={"duckdb"},
    code_version="1",
    owners=DATA_ENGINEERING,
    tags=layer_tags("audit"),
)
def publication(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The run made visible, all at once: its warehouse and its report replace the last good run's together.

    Until this step, every step of the run works on the run's own copy; a run refused by a gate or
    killed before this step leaves the published warehouse and report exactly as they were.
    """

    def unfinished(run_id: str) -> bool:  # asked as the lake is collected, not before
        run = context.instance.get_run_by_id(run_id)
        return run is not None and run.status in IN_PROGRESS

    done = warehouse.publish(context.run.run_id, unfinished=unfinished)
    if done is None:
        return dg.MaterializeResult(metadata={"published_run": "none: this run built nothing to publish"})
    published, collected = done
    return dg.MaterializeResult(
        metadata={
            "superseded_loads_removed": len(collected),
            "published_run": published.run_id,
            "replaced_run": published.previous or "none: the first publication",
            "warehouse": dg.MetadataValue.path(str(published.database)),
            "dagster/uri": (published.reports / "index.html").as_uri(),
        }
    )
