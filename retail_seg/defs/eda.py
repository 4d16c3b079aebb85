"""EDA: summary statistics at transaction and customer grain, distributions, demographics, spend over time."""

from typing import NamedTuple

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from retail_seg.core.eda import histogram, spend_by_demographics, spend_by_month, summarize_numeric
from retail_seg.core.eda_figures import histograms, monthly_revenue, spend_by_age_band, spend_by_gender
from retail_seg.core.features import ENGINEERED_COLUMNS, RFM_COLUMNS
from retail_seg.core.warehouse import (
    CUSTOMER_FEATURES,
    CUSTOMERS,
    EDA_SUMMARY,
    STAGING_TRANSACTIONS,
    Table,
    build_candidate_from_frame,
    publish,
)
from retail_seg.defs.metadata import markdown_table, save_figure, table_metadata
from retail_seg.defs.resources import WAREHOUSE_POOL, ReportsFolder

TRANSACTION_VARIABLES = ("quantity", "unit_price", "line_total")
CUSTOMER_VARIABLES = (*RFM_COLUMNS, *ENGINEERED_COLUMNS)


class Distribution(NamedTuple):
    label: str
    table: Table
    column: str
    log: bool
    where: str | None = None


# The distributions a reader looks at first.
DISTRIBUTIONS = (
    Distribution("quantity per sale line", STAGING_TRANSACTIONS, "quantity", True, "NOT is_return"),
    Distribution("unit price", STAGING_TRANSACTIONS, "unit_price", True),
    Distribution("sale line total", STAGING_TRANSACTIONS, "line_total", True, "NOT is_return"),
    Distribution("recency (days)", CUSTOMER_FEATURES, "recency_days", False),
    Distribution("frequency (invoices)", CUSTOMER_FEATURES, "frequency", True),
    Distribution("net spend per customer", CUSTOMER_FEATURES, "monetary", True),
)


@dg.asset(
    deps=["customer_features", "customers"],
    group_name="marts",
    kinds={"duckdb", "matplotlib"},
    code_version="2",
    pool=WAREHOUSE_POOL,
)
def eda_summary(warehouse: DuckDBResource, reports: ReportsFolder) -> dg.MaterializeResult:
    """Count, missing, mean, median, mode, std, quantiles and skew of every numeric variable, with figures."""
    with warehouse.get_connection() as conn:
        summary = pd.concat(
            [
                summarize_numeric(conn, STAGING_TRANSACTIONS, TRANSACTION_VARIABLES, "transaction"),
                summarize_numeric(conn, CUSTOMER_FEATURES, CUSTOMER_VARIABLES, "customer"),
                summarize_numeric(conn, CUSTOMERS, ("distinct_products", "age"), "customer"),
            ],
            ignore_index=True,
        )
        panels = {
            d.label: histogram(conn, d.table, d.column, log=d.log, where=d.where) for d in DISTRIBUTIONS
        }
        demographics = spend_by_demographics(conn, CUSTOMER_FEATURES, CUSTOMERS)
        monthly = spend_by_month(conn, STAGING_TRANSACTIONS)
        build_candidate_from_frame(conn, EDA_SUMMARY, summary)
        publish(conn, EDA_SUMMARY)
        metadata = table_metadata(conn, EDA_SUMMARY)
    folder = reports.prepare()
    figures = {
        "eda_histograms": histograms(panels, log_x={d.label for d in DISTRIBUTIONS if d.log}),
        "monthly_revenue": monthly_revenue(monthly),
    }
    # Demographic charts only where the source has demographics, not a chart of "unknown".
    for dimension, name, draw in (
        ("age_band", "spend_by_age_band", spend_by_age_band),
        ("gender", "spend_by_gender", spend_by_gender),
    ):
        groups = demographics[demographics["dimension"] == dimension]
        if (groups["group"] != "unknown").any():
            figures[name] = draw(groups)
    shown = {name: save_figure(fig, folder, name)[1] for name, fig in figures.items()}
    wide = summary.pivot_table(index=["grain", "variable"], columns="statistic", values="value", sort=False)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "statistics": markdown_table(wide.reset_index().round(2)),
            "spend_by_demographics": markdown_table(demographics.round(2)),
            **shown,
        }
    )
