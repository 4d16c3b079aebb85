"""Reports: the HTML report a marketer reads, with every table and figure of the analysis."""

import dagster as dg

from retail_seg.core.report import build_segment_report
from retail_seg.defs.metadata import ANALYTICS, layer_tags
from retail_seg.defs.resources import Warehouse

# The assets whose figures the report shows, each figure drawn once by the asset it belongs to.
FIGURES_FROM = (
    "segment_profiles",
    "customer_segments",
    "k_selection",
    "method_comparison",
    "eda_summary",
    "segment_migration",
)


@dg.asset(
    deps=[*FIGURES_FROM, "customer_features", "model_features", "transaction_history"],
    group_name="reports",
    kinds={"html"},
    code_version="3",
    owners=ANALYTICS,
    tags=layer_tags("reports"),
)
def segment_report(warehouse: Warehouse) -> dg.MaterializeResult:
    """index.html: segments with recommendations, the choice of k and method, RFM grid, EDA, and figures."""
    with warehouse.get_connection() as conn:
        page = build_segment_report(conn, list(FIGURES_FROM))
    path = page.write(warehouse.reports_folder())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": path.as_uri(),
            "report": dg.MetadataValue.path(str(path)),
            "figures": len(page.figures),
        }
    )
