"""Exploratory data analysis: summary statistics, histograms and spend by group, computed in DuckDB.

Every function returns a small aggregated frame; transaction-grain tables never leave the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd

from retail_seg.core.features import ENGINEERED_COLUMNS, RFM_COLUMNS, invoices_source
from retail_seg.core.parsing import literal
from retail_seg.core.tables import CUSTOMER_FEATURES, CUSTOMERS, STAGING_TRANSACTIONS, Table
from retail_seg.core.warehouse import column_types, row_count

STATISTICS = (
    "count",
    "missing",
    "mean",
    "median",
    "mode",
    "std",
    "min",
    "q05",
    "q25",
    "q75",
    "q95",
    "max",
    "skew",
)

UNKNOWN = "unknown"
AGE_BANDS = ("<25", "25–34", "35–44", "45–54", "55–64", "65+", UNKNOWN)
# The first age of every band after "<25"; an age's band is how many of these it has reached.
_AGE_BAND_STARTS = (25, 35, 45, 55, 65)

# One variable at a time, streamed: its values are read three times (moments, central moments, mode)
# rather than unpivoted into one long table, which DuckDB must hold whole and which ran out of memory
# under a 2 GB limit at 30 million lines.
_SUMMARY_SQL = """
    WITH v AS NOT MATERIALIZED (
        -- pandas counts NaN as missing; left in, it would also poison every DuckDB aggregate.
        SELECT CASE WHEN isnan(x) THEN NULL ELSE x END AS value
        FROM (SELECT CAST({column} AS DOUBLE) AS x FROM {table})
    ),
    moments AS (
        SELECT
            count(value) AS n,
            count(*) - count(value) AS missing,
            -- Kahan-summed, like numpy's pairwise sum: deviations about a mean off by a few units in the
            -- last place spoil the third moment once values sit far from zero.
            favg(value) AS mean,
            min(value) AS min,
            max(value) AS max,
            quantile_cont(value, [0.5, 0.05, 0.25, 0.75, 0.95]) AS q
        FROM v
    ),
    central AS (
        -- Two passes, as pandas does: DuckDB's skewness() and stddev_samp() accumulate in one pass and drift
        -- from pandas far from zero (skew by 1e-6 relative at 1e10); skewness() also gives NULL, not 0, for a
        -- constant column and raises "SKEW is out of range" on NaN.
        SELECT sum(power(value - m.mean, 2)) AS m2, sum(power(value - m.mean, 3)) AS m3
        FROM v, moments m
    ),
    modes AS (
        -- DuckDB's mode() does not say which of tied values it returns; pandas' first mode is the smallest.
        SELECT value AS mode
        FROM v
        WHERE value IS NOT NULL
        GROUP BY value
        ORDER BY count(*) DESC, value
        LIMIT 1
    )
    SELECT
        $variable AS variable,
        n AS count,
        missing,
        mean,
        q[1] AS median,
        mode,
        CASE WHEN n > 1 THEN sqrt(m2 / (n - 1)) END AS std,
        min,
        q[2] AS q05,
        q[3] AS q25,
        q[4] AS q75,
        q[5] AS q95,
        max,
        CASE
            WHEN n < 3 THEN NULL
            -- pandas takes sums of squared or cubed deviations below 1e-14 for rounding error, i.e. zero.
            WHEN abs(m2) < 1e-14 OR abs(m3) < 1e-14 THEN 0
            ELSE n * sqrt(n - 1) / (n - 2) * m3 / power(m2, 1.5)
        END AS skew
    FROM moments, central LEFT JOIN modes ON true
"""

_HISTOGRAM_SQL = """
    WITH picked AS (
        SELECT CAST({column} AS DOUBLE) AS x FROM {table} WHERE ({where})
    ),
    scaled AS (
        SELECT CASE WHEN $log THEN log10(x) ELSE x END AS x
        FROM picked
        WHERE x IS NOT NULL AND NOT isnan(x) AND (NOT $log OR x > 0)
    ),
    edges AS (
        -- A single distinct value gets a unit-wide range centred on it, as numpy.histogram gives it.
        SELECT
            CASE WHEN max(x) > min(x) THEN min(x) ELSE min(x) - 0.5 END AS lo,
            CASE WHEN max(x) > min(x) THEN max(x) ELSE max(x) + 0.5 END AS hi
        FROM scaled
        HAVING count(*) > 0
    ),
    counted AS (
        -- Bins are closed on the left; the last one also holds the maximum.
        SELECT least(CAST(floor((x - lo) / (hi - lo) * $bins) AS BIGINT), $bins - 1) AS bin, count(*) AS n
        FROM scaled, edges
        GROUP BY bin
    ),
    bins AS (
        SELECT b.bin, lo + b.bin * (hi - lo) / $bins AS lower, lo + (b.bin + 1) * (hi - lo) / $bins AS upper
        FROM edges, range($bins) AS b(bin)
    )
    SELECT
        CASE WHEN $log THEN power(10, lower) ELSE lower END AS "left",
        CASE WHEN $log THEN power(10, upper) ELSE upper END AS "right",
        coalesce(n, 0) AS count
    FROM bins LEFT JOIN counted USING (bin)
    ORDER BY bin
"""

_DEMOGRAPHICS_SQL = """
    WITH labelled AS (
        SELECT
            f.monetary AS spend,
            CASE
                WHEN c.age IS NULL THEN $unknown
                ELSE $bands[1 + len(list_filter($starts, lambda start: start <= c.age))]
            END AS age_band,
            coalesce(c.gender, $unknown) AS gender{category_columns}
        FROM {features} f LEFT JOIN {customers} c USING (customer_id)
    ),
    grouped AS (
        SELECT 'age_band' AS dimension, age_band AS "group", count(*) AS customers,
               sum(spend) AS total_spend, avg(spend) AS mean_spend, median(spend) AS median_spend
        FROM labelled GROUP BY age_band
        UNION ALL
        SELECT 'gender', gender, count(*), sum(spend), avg(spend), median(spend)
        FROM labelled GROUP BY gender
        {categories}
    )
    SELECT
        dimension,
        "group",
        customers,
        CAST(total_spend AS DOUBLE) AS total_spend,
        CAST(mean_spend AS DOUBLE) AS mean_spend,
        CAST(median_spend AS DOUBLE) AS median_spend
    FROM grouped
    ORDER BY
        dimension <> 'age_band',
        dimension,
        CASE WHEN dimension = 'age_band' THEN list_position($bands, "group") END,
        "group" = $unknown,
        "group"
"""

# From the invoice sums (`features.invoices_sql`), a tenth of the rows the lines are: a sum is dated
# like its lines, its net is theirs, and it holds a purchase when any of its lines is one.
_MONTHLY_SQL = """
    SELECT
        date_trunc('month', invoice_date) AS month,
        CAST(sum(net) AS DOUBLE) AS net_revenue,
        count(DISTINCT invoice_no) FILTER (WHERE purchase_lines > 0) AS invoices,
        count(DISTINCT customer_id) AS customers
    FROM {invoices}
    GROUP BY month
    ORDER BY month
"""


def _quote(column: str) -> str:
    """A column name as a SQL identifier, so a name with a space or a capital still binds."""
    return '"' + column.replace('"', '""') + '"'


def summarize_numeric(
    conn: duckdb.DuckDBPyConnection, table: Table, columns: tuple[str, ...], grain: str
) -> pd.DataFrame:
    """Summary statistics of numeric columns, long format: one row per (variable, statistic)."""
    if not columns or len(set(columns)) != len(columns):
        raise ValueError(f"summary of {table}: columns must be distinct and at least one, got {columns}")
    wide = pd.concat(
        [
            conn.execute(_SUMMARY_SQL.format(table=table, column=_quote(c)), {"variable": c}).df()
            for c in columns
        ],
        ignore_index=True,
    )
    return pd.DataFrame(
        {
            "grain": grain,
            "variable": np.repeat(wide["variable"].to_numpy(), len(STATISTICS)),
            "statistic": np.tile(STATISTICS, len(wide)),
            "value": wide[list(STATISTICS)].to_numpy(dtype=float).ravel(),
        }
    )


def histogram(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    column: str,
    bins: int = 40,
    log: bool = False,
    where: str | None = None,
) -> pd.DataFrame:
    """Equal-width bin counts of a column (`left`, `right`, `count`), on a log10 scale when `log`.

    Missing values are left out, and with `log` so are values that are not positive; edges are always in
    the column's own units. `where` is a SQL predicate written in code, never taken from a user. A column
    with no values left gives an empty frame.
    """
    if bins < 1:
        raise ValueError(f"histogram of {table}.{column}: bins must be at least 1, got {bins}")
    sql = _HISTOGRAM_SQL.format(column=_quote(column), table=table, where=where or "true")
    return conn.execute(sql, {"bins": bins, "log": log}).df()


def categories_of(conn: duckdb.DuckDBPyConnection, customers: Table) -> list[str]:
    """The categories a customer table declares (education, marital status...), as `staging.customers`
    holds them beside the demographics every source may have."""
    fixed = {"customer_id", "gender", "country"}
    return [name for name, kind in column_types(conn, customers) if kind == "VARCHAR" and name not in fixed]


def spend_by_demographics(conn: duckdb.DuckDBPyConnection, features: Table, customers: Table) -> pd.DataFrame:
    """Customers and net spend per age band, per gender and per declared category (a customer table's
    education, marital status...), long format, unknown groups last."""
    categories = categories_of(conn, customers)
    sql = _DEMOGRAPHICS_SQL.format(
        features=features,
        customers=customers,
        category_columns="".join(f", coalesce(c.{_quote(c)}, $unknown) AS {_quote(c)}" for c in categories),
        categories="".join(
            f"UNION ALL SELECT {literal(c)}, {_quote(c)}, count(*), sum(spend), avg(spend), median(spend) "
            f"FROM labelled GROUP BY {_quote(c)} "
            for c in categories
        ),
    )
    params = {"bands": list(AGE_BANDS), "starts": list(_AGE_BAND_STARTS), "unknown": UNKNOWN}
    return conn.execute(sql, params).df()


def spend_by_month(conn: duckdb.DuckDBPyConnection, invoices: str) -> pd.DataFrame:
    """Net revenue, purchase invoices and active customers per calendar month, from `invoices`, the lines
    summed per invoice (`features.invoices_source`)."""
    return conn.execute(_MONTHLY_SQL.format(invoices=invoices)).df()


TRANSACTION_VARIABLES = ("quantity", "unit_price", "line_total")
CUSTOMER_VARIABLES = (*RFM_COLUMNS, *ENGINEERED_COLUMNS)


class Distribution(NamedTuple):
    """A histogram to draw: its panel title (with the unit), the column and whether its axis is logged."""

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


@dataclass(frozen=True)
class Exploration:
    """The EDA of the published lines and customers: statistics, histograms, demographics, months."""

    summary: pd.DataFrame
    histograms: dict[str, pd.DataFrame]
    demographics: pd.DataFrame
    monthly: pd.DataFrame

    def wide_summary(self) -> pd.DataFrame:
        """One row per (grain, variable), one column per statistic."""
        wide = self.summary.pivot_table(
            index=["grain", "variable"], columns="statistic", values="value", sort=False
        )
        return wide.reset_index()


def explore(conn: duckdb.DuckDBPyConnection) -> Exploration:
    """Summary statistics of every numeric variable, the key distributions, spend by age band and gender,
    and spend per month, each aggregated inside DuckDB."""
    has_lines = row_count(conn, STAGING_TRANSACTIONS) > 0
    known = {name for name, _ in column_types(conn, CUSTOMER_FEATURES)}
    declared = [
        name
        for name, kind in column_types(conn, CUSTOMER_FEATURES)
        if kind == "DOUBLE" and name not in (*CUSTOMER_VARIABLES, "monetary")
    ]
    present = tuple(
        v
        for v in CUSTOMER_VARIABLES
        if v in known and conn.execute(f"SELECT count({_quote(v)}) FROM {CUSTOMER_FEATURES}").fetchone()[0]
    )
    summary = pd.concat(
        [
            *(
                [summarize_numeric(conn, STAGING_TRANSACTIONS, TRANSACTION_VARIABLES, "transaction")]
                if has_lines
                else []
            ),
            *(
                [summarize_numeric(conn, CUSTOMER_FEATURES, (*present, *declared), "customer")]
                if present or declared
                else []
            ),
            summarize_numeric(conn, CUSTOMERS, ("distinct_products", "age"), "customer"),
        ],
        ignore_index=True,
    )
    distributions = [
        d
        for d in DISTRIBUTIONS
        if (d.table == STAGING_TRANSACTIONS and has_lines)
        or (d.table == CUSTOMER_FEATURES and d.column in present)
    ] + [Distribution(name.replace("_", " "), CUSTOMER_FEATURES, name, False) for name in declared]
    return Exploration(
        summary=summary,
        histograms={
            d.label: histogram(conn, d.table, d.column, log=d.log, where=d.where) for d in distributions
        },
        demographics=spend_by_demographics(conn, CUSTOMER_FEATURES, CUSTOMERS),
        monthly=spend_by_month(conn, invoices_source(conn)),
    )
