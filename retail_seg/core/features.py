"""Customer features: recency, frequency, monetary value, engineered features and RFM scores, in DuckDB."""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
from dataclasses import dataclass, replace

import duckdb

from retail_seg.core.parsing import literal
from retail_seg.core.rfm import quintile_scores_sql, segment_sql
from retail_seg.core.tables import (
    CUSTOMER_FEATURES,
    CUSTOMER_SUMS,
    CUSTOMER_SUMS_BASIS,
    RAW_LOADS,
    REJECTED_ACROSS_LOADS,
    STAGING_INVOICES,
    STAGING_TRANSACTIONS,
)
from retail_seg.core.warehouse import bound, build_candidate, exists, row_count, transaction

RFM_COLUMNS = ("recency_days", "frequency", "monetary")
ENGINEERED_COLUMNS = (
    "tenure_days",
    "avg_order_value",
    "mean_days_between",
    "return_rate",
)


# A stored invoice number as the history reads it. Loads staged before a blank number was made no number
# (NULL, `parsing.INVOICE_NO`) stored it as '': read so, one customer's number-less lines stay one invoice
# whichever release staged them, and a repeat across such loads is still a repeat.
STORED_INVOICE_NO = "nullif(invoice_no, '')"


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

# Each customer's sums over their invoices, grouped by invoice (an invoice in two loads, or on two dates,
# is one) and then by customer. Every feature derives from these sums, so the build costs a fraction of
# a bare RFM query over the lines, and counts needing a distinct set per customer (products bought)
# belong to `staging.customers`. The sums of a set of customers' sums are the sums of their invoices, so
# a history that gains a day's file adds that file's sums to those kept (`_kept_sums`).
_SUMS_SQL = """
    SELECT
        customer_id,
        max(last_purchase) AS last_purchase,
        min(first_purchase) AS first_purchase,
        count(last_purchase) AS frequency,  -- invoices with a purchase on them
        sum(net) AS net,
        sum(purchased) AS purchased
    FROM (
        SELECT
            customer_id,
            max(invoice_date) FILTER (WHERE purchase_lines > 0) AS last_purchase,
            min(invoice_date) FILTER (WHERE purchase_lines > 0) AS first_purchase,
            sum(net) AS net,
            sum(purchased) AS purchased
        FROM {invoices}
        GROUP BY customer_id, invoice_no
    )
    GROUP BY customer_id
"""

# Sums of sums: the customers' kept sums and a day's, added up.
_ADDED_SQL = """
    SELECT customer_id, max(last_purchase) AS last_purchase, min(first_purchase) AS first_purchase,
           CAST(sum(frequency) AS BIGINT) AS frequency, sum(net) AS net, sum(purchased) AS purchased
    FROM ({parts})
    GROUP BY customer_id
"""

# What the features read, from the sums; returns are what was bought less the net.
_PER_CUSTOMER_SQL = """
    SELECT customer_id, last_purchase, first_purchase, frequency, net AS monetary, purchased,
           coalesce(purchased, 0) - net AS returned, CAST($as_of AS DATE) AS as_of
    FROM {sums}
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
    sums: str = "summed from every invoice"  # how the customers' sums were had (`_kept_sums`)
    kept_sums: bool = False  # whether `staging.customer_sums` served (and was brought up to date)


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


def _parts(conn: duckdb.DuckDBPyConnection) -> dict[str, str] | None:
    """What each load adds to the history's invoice sums, as a fingerprint: the code that sums, its file's
    checksum, its counts, and the lines of it the whole history rejects. None for a history without
    loads' sums."""
    if not all(exists(conn, table) for table in (STAGING_INVOICES, RAW_LOADS, REJECTED_ACROSS_LOADS)):
        return None
    rows = conn.execute(
        f"""SELECT l.load_id, concat_ws(':', $summed_by, l.sha256, l.clean, l.rejected, count(r.source_row),
                                        coalesce(sum(hash(r.source_row, r.rule)), 0))
            FROM {RAW_LOADS} l LEFT JOIN {REJECTED_ACROSS_LOADS} r USING (load_id)
            GROUP BY l.load_id, l.sha256, l.clean, l.rejected""",
        {"summed_by": _SUMMED_BY},
    ).fetchall()
    return dict(rows)


def _kept_sums(conn: duckdb.DuckDBPyConnection, invoices: str) -> tuple[str, str] | None:
    """`staging.customer_sums` brought up to date with the history: its name, and how it was brought
    there. None for a history whose invoices are not a load's (the sums are then summed in the query).

    The sums are kept with the loads they sum (`staging.customer_sums_basis`). When the history holds
    those loads as they were, plus new ones, only the new loads' invoices are summed and added to the
    customers they touch; a customer with an invoice that an older load holds too is summed again from
    all their invoices, since that invoice counts once. Anything else -- a load corrected, erased or
    judged differently, a first build -- sums every invoice. Either way the sums are those of every
    invoice (the history's tests compare the two)."""
    parts = _parts(conn)
    if parts is None:
        return None
    basis = {}
    if exists(conn, CUSTOMER_SUMS_BASIS) and exists(conn, CUSTOMER_SUMS):
        basis = dict(conn.execute(f"SELECT load_id, part FROM {CUSTOMER_SUMS_BASIS}").fetchall())
    added = [load_id for load_id in parts if load_id not in basis]
    with transaction(conn):
        if not basis or any(parts.get(load_id) != part for load_id, part in basis.items()):
            conn.execute(f"CREATE OR REPLACE TABLE {CUSTOMER_SUMS} AS {_SUMS_SQL.format(invoices=invoices)}")
            how = "summed from every invoice"
        elif added:
            _add_loads(conn, invoices, added)
            how = f"kept, and {len(added)} new load{'s' * (len(added) != 1)} added"
        else:
            how = "kept: no load changed"
        conn.execute(f"CREATE OR REPLACE TABLE {CUSTOMER_SUMS_BASIS} (load_id VARCHAR, part VARCHAR)")
        if parts:
            conn.executemany(f"INSERT INTO {CUSTOMER_SUMS_BASIS} VALUES (?, ?)", list(parts.items()))
    return str(CUSTOMER_SUMS), how


def _add_loads(conn: duckdb.DuckDBPyConnection, invoices: str, added: list[str]) -> None:
    """Add the invoices of the `added` loads to the kept sums of the customers they touch."""
    ids = ", ".join(literal(load_id) for load_id in added)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _added AS SELECT * FROM {invoices} WHERE load_id IN ({ids})")
    try:
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _again AS
                SELECT DISTINCT a.customer_id FROM _added a
                JOIN (SELECT customer_id, invoice_no FROM {invoices} WHERE load_id NOT IN ({ids})) o
                  ON o.customer_id = a.customer_id AND o.invoice_no IS NOT DISTINCT FROM a.invoice_no"""
        )
        kept = f"SELECT s.* FROM {CUSTOMER_SUMS} s SEMI JOIN _added USING (customer_id)"
        day = _SUMS_SQL.format(invoices="_added")
        again = f"(SELECT i.* FROM {invoices} i SEMI JOIN _again USING (customer_id))"
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _touched AS
                SELECT * FROM ({_ADDED_SQL.format(parts=f"{kept} UNION ALL {day}")})
                WHERE customer_id NOT IN (SELECT customer_id FROM _again)
                UNION ALL {_SUMS_SQL.format(invoices=again)}"""
        )
        conn.execute(f"DELETE FROM {CUSTOMER_SUMS} WHERE customer_id IN (SELECT customer_id FROM _touched)")
        conn.execute(f"INSERT INTO {CUSTOMER_SUMS} SELECT * FROM _touched")
    finally:
        for temporary in ("_added", "_again", "_touched"):
            conn.execute(f"DROP TABLE IF EXISTS {temporary}")


# The code that sums and adds, and how a load's stored invoice numbers are read, in every load's
# fingerprint: sums kept by an earlier release that summed, added or read otherwise are summed again, not
# added to. (A change of a comment in it costs one full sum.)
_SUMMING_CODE = _SUMS_SQL + _ADDED_SQL + inspect.getsource(_add_loads) + STORED_INVOICE_NO
_SUMMED_BY = hashlib.sha256(_SUMMING_CODE.encode()).hexdigest()[:16]


def build_customer_features(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> FeatureBuild:
    """Build `marts.customer_features`'s candidate: one row per customer who bought something before `as_of`.

    Recency is whole days from the last purchase to `as_of` (by default the day after the latest
    transaction, so the same input always gives the same features); frequency counts distinct purchase
    invoices; monetary is net spend, returns subtracted. Customers whose returns cancel all they bought
    have no spend to segment and are counted, not featured.
    """
    invoices = invoices_source(conn)
    chosen = conn.execute(_AS_OF_SQL.format(invoices=invoices), {"as_of": as_of}).fetchall()[0][0]
    # The day after the last invoice (the default) counts every invoice, so the kept sums serve.
    kept = _kept_sums(conn, invoices) if as_of is None else None
    if kept:
        sums, how = kept
    else:
        dated = f"(SELECT * FROM {invoices} WHERE invoice_date < $as_of)"
        sums, how = f"({_SUMS_SQL.format(invoices=dated)})", "summed from every invoice"
    per_customer = _PER_CUSTOMER_SQL.format(sums=sums)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _per_customer AS {per_customer}", {"as_of": chosen})
    try:
        build_candidate(conn, CUSTOMER_FEATURES, _FEATURES_SQL)
        return replace(_built(conn, chosen), sums=how, kept_sums=kept is not None)
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
