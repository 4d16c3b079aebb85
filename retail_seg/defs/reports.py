"""Reports: the HTML report a marketer reads, with every table and figure of the analysis."""

import datetime as dt

import dagster as dg
from pydantic import Field

from retail_seg.core.history import history_currency
from retail_seg.core.report import RunFacts, build_segment_report
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


class ReportConfig(dg.Config):
    """How the report shows money."""

    currency: str = Field(
        default="",
        description="Currency code or sign shown with amounts (e.g. GBP, EUR, $); empty: the currency the "
        "history's exports name, else plain numbers.",
    )


@dg.asset(
    deps=[*FIGURES_FROM, "customer_features", "customer_value", "model_features", "transaction_history"],
    group_name="reports",
    kinds={"html"},
    code_version="6",
    owners=ANALYTICS,
    tags=layer_tags("reports"),
)
def segment_report(
    context: dg.AssetExecutionContext, config: ReportConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """index.html, one self-contained page: the run, key decisions, segments with recommendations, value
    and churn, movement since the last run, the analysis, and the method in an appendix."""
    with warehouse.get_connection() as conn:
        currency = config.currency or history_currency(conn, warehouse.lake())
        run = RunFacts(context.run.run_id, dt.datetime.now(dt.UTC), currency)
        page = build_segment_report(conn, list(FIGURES_FROM), run)
    path = page.write(warehouse.reports_folder())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": path.as_uri(),
            "report": dg.MetadataValue.path(str(path)),
            "figures": page.figures,
        }
    )
