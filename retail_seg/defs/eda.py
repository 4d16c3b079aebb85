"""EDA: summary statistics at transaction and customer grain, distributions, demographics, spend over time."""

import dagster as dg

from retail_seg.core.eda import explore
from retail_seg.core.eda_figures import eda_figures
from retail_seg.core.tables import CUSTOMER_FEATURES, EDA_SUMMARY
from retail_seg.core.warehouse import build_candidate_from_frame, publish, read_table
from retail_seg.defs.metadata import ANALYTICS, layer_tags, markdown_table, record_figures, table_metadata
from retail_seg.defs.resources import Warehouse


@dg.asset(
    deps=["customer_features", "customers", "transaction_history"],
    group_name="marts",
    kinds={"duckdb", "matplotlib"},
    code_version="3",
    owners=ANALYTICS,
    tags=layer_tags("marts"),
)
def eda_summary(warehouse: Warehouse) -> dg.MaterializeResult:
    """Count, missing, mean, median, mode, std, quantiles and skew of every numeric variable, with figures."""
    with warehouse.get_connection() as conn:
        exploration = explore(conn)
        build_candidate_from_frame(conn, EDA_SUMMARY, exploration.summary)
        publish(conn, EDA_SUMMARY)
        features = read_table(conn, CUSTOMER_FEATURES, ["r_score", "f_score", "monetary"])
        figures = record_figures(conn, "eda_summary", eda_figures(exploration, features))
        metadata = table_metadata(conn, EDA_SUMMARY)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **figures,
            "statistics": markdown_table(exploration.wide_summary().round(2)),
            "spend_by_demographics": markdown_table(exploration.demographics.round(2)),
        }
    )
