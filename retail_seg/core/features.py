"""Customer features: recency, frequency, monetary value, engineered features and RFM scores, in DuckDB."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from retail_seg.core.rfm import quintile_scores_sql, segment_sql
from retail_seg.core.tables import CUSTOMER_FEATURES, STAGING_INVOICES, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import bound, build_candidate, exists, row_count

RFM_COLUMNS = ("recency_days", "frequency", "monetary")
ENGINEERED_COLUMNS = (
    "tenure_days",
    "avg_order_value",
    "mean_days_between",
    "return_rate",
)


def invoices_sql(lines: str) -> str:
    """The lines of `lines` (staging's columns) summed per customer, invoice and date: the grain the
    features start from. Sums are exact and add up across loads, so a load's sums are kept with it and a
    history's features read a tenth of the rows its lines would be (about ten lines an invoice)."""
    return f"""
        SELECT customer_id, invoice_no, invoice_date,
               sum(line_total) AS net,
               sum(line_total) FILTER (WHERE NOT is_return) AS purchased,
               count(*) FILTER (WHERE NOT is_return) AS purchase_lines,
               load_id
        FROM {lines}
        GROUP BY customer_id, invoice_no, invoice_date, load_id
    """


def invoices_source(conn: duckdb.DuckDBPyConnection) -> str:
    """Where the invoice sums are: the history's (`history.build_history`), or staged lines summed here."""
    return (
        str(STAGING_INVOICES) if exists(conn, STAGING_INVOICES) else f"({invoices_sql(STAGING_TRANSACTIONS)})"
    )


# The as-of date defaults to the day after the latest transaction, never the wall clock. It is read
# first, as one value, so the aggregation below is a plain scan of the invoices.
_AS_OF_SQL = """
    SELECT coalesce(CAST($as_of AS DATE), CAST(max(invoice_date) AS DATE) + 1) FROM {invoices}
"""

# One pass over the invoices, grouped by invoice (an invoice in two loads, or on two dates, is one) and
# then by customer; the features and the count of customers left out both read it. Each feature derives
# from these sums, so the build costs a fraction of a bare RFM query over the lines, and counts needing a
# distinct set per customer (products bought) belong to `staging.customers`. Returns are what was bought
# less the net.
_PER_CUSTOMER_SQL = """
    WITH invoices AS (
        SELECT
            customer_id,
            max(invoice_date) FILTER (WHERE purchase_lines > 0) AS last_purchase,
            min(invoice_date) FILTER (WHERE purchase_lines > 0) AS first_purchase,
            sum(net) AS net,
            sum(purchased) AS purchased
        FROM {invoices}
        WHERE invoice_date < $as_of
        GROUP BY customer_id, invoice_no
    )
    SELECT
        customer_id,
        max(last_purchase) AS last_purchase,
        min(first_purchase) AS first_purchase,
        count(last_purchase) AS frequency,  -- invoices with a purchase on them
        sum(net) AS monetary,
        sum(purchased) AS purchased,
        coalesce(sum(purchased), 0) - sum(net) AS returned,
        CAST($as_of AS DATE) AS as_of
    FROM invoices
    GROUP BY customer_id
"""

_FEATURES_SQL = f"""
    WITH featured AS (
        SELECT
            customer_id,
            date_diff('day', CAST(last_purchase AS DATE), as_of) AS recency_days,
            frequency,
            CAST(round(monetary, 2) AS DOUBLE) AS monetary,
            date_diff('day', CAST(first_purchase AS DATE), as_of) AS tenure_days,
            CAST(round(monetary / frequency, 2) AS DOUBLE) AS avg_order_value,
            -- Undefined for a single purchase; preprocessing imputes it when a model uses it.
            CASE WHEN frequency > 1
                 THEN round(date_diff('minute', first_purchase, last_purchase) / 1440.0 / (frequency - 1), 2)
            END AS mean_days_between,
            CAST(round(returned / purchased, 4) AS DOUBLE) AS return_rate,
            first_purchase,
            last_purchase,
            as_of
        FROM _per_customer
        -- Judged on the published (cent-rounded) value, so no customer is featured with a spend of 0.00.
        WHERE frequency >= 1 AND round(monetary, 2) > 0
    ),
    r AS ({quintile_scores_sql("featured", "recency_days", higher_is_better=False)}),
    f AS ({quintile_scores_sql("featured", "frequency")}),
    m AS ({quintile_scores_sql("featured", "monetary")}),
    scored AS (
        SELECT featured.*, r.score AS r_score, f.score AS f_score, m.score AS m_score
        FROM featured
        LEFT JOIN r USING (recency_days)
        LEFT JOIN f USING (frequency)
        LEFT JOIN m USING (monetary)
    )
    SELECT *, {segment_sql()} AS rfm_segment
    FROM scored
    ORDER BY customer_id
"""


@dataclass(frozen=True)
class FeatureBuild:
    """What a feature build produced and what it left out."""

    as_of: dt.date
    customers: int
    without_purchase: int
    non_positive_spend: int


def build_table_features(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> FeatureBuild:
    """`marts.customer_features`'s candidate from a history of customer tables (`customer_tables`): the
    same features, by the same SQL, from the recency, frequency and spend the tables state, and the
    tables' declared features beside them. As of the tables' own date unless `as_of` says otherwise."""
    from retail_seg.core import customer_tables

    stated = conn.execute(f"SELECT max(as_of) FROM {customer_tables.CUSTOMER_TABLE}").fetchone()[0]
    chosen = as_of or stated
    if chosen < stated:
        raise customer_tables.AsOfTooEarly(
            f"as_of {chosen} is before {stated}, the date the customer tables state recency at: a table "
            "cannot say what its customers had bought before it was taken"
        )
    rfm = customer_tables.has_rfm(conn)
    if rfm:
        sql = customer_tables.per_customer_sql()
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _per_customer AS {sql}", {"as_of": chosen})
    try:
        sql = customer_tables.features_sql(conn, _FEATURES_SQL if rfm else None)
        build_candidate(conn, CUSTOMER_FEATURES, sql, bound(sql, {"as_of": chosen}))
        return _built(conn, chosen, counted=rfm)
    finally:
        conn.execute("DROP TABLE IF EXISTS _per_customer")


def build_customer_features(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> FeatureBuild:
    """Build `marts.customer_features`'s candidate: one row per customer who bought something before `as_of`.

    Recency is whole days from the last purchase to `as_of` (by default the day after the latest
    transaction, so the same input always gives the same features); frequency counts distinct purchase
    invoices; monetary is net spend, returns subtracted. Customers whose returns cancel all they bought
    have no spend to segment and are counted, not featured.
    """
    invoices = invoices_source(conn)
    chosen = conn.execute(_AS_OF_SQL.format(invoices=invoices), {"as_of": as_of}).fetchall()[0][0]
    per_customer = _PER_CUSTOMER_SQL.format(invoices=invoices)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _per_customer AS {per_customer}", {"as_of": chosen})
    try:
        build_candidate(conn, CUSTOMER_FEATURES, _FEATURES_SQL)
        return _built(conn, chosen)
    finally:
        conn.execute("DROP TABLE IF EXISTS _per_customer")


def _built(conn: duckdb.DuckDBPyConnection, as_of: dt.date, counted: bool = True) -> FeatureBuild:
    """The build's counts: customers featured, and those `_per_customer` holds that were left out."""
    excluded = (0, 0)
    if counted:
        excluded = conn.execute(
            "SELECT count(*) FILTER (WHERE frequency = 0), "
            "count(*) FILTER (WHERE frequency > 0 AND round(monetary, 2) <= 0) FROM _per_customer"
        ).fetchall()[0]
    return FeatureBuild(
        as_of=as_of,
        customers=row_count(conn, CUSTOMER_FEATURES.candidate),
        without_purchase=excluded[0],
        non_positive_spend=excluded[1],
    )
