"""Quality gates: one suite per layer, run on a candidate table before it may replace the live one."""

from __future__ import annotations

import datetime as dt

import duckdb

from retail_seg.core.cleaning import RULE_REMEDIES, lines_sharing_a_key_hash_sql
from retail_seg.core.expectations import (
    FINITE_LIMIT,
    ColumnRule,
    GateResult,
    check_columns,
    fact,
)
from retail_seg.core.mappings import LINE_COLUMNS as CANONICAL_COLUMNS
from retail_seg.core.mappings import Mapping
from retail_seg.core.tables import Table
from retail_seg.core.warehouse import column_types, row_count


def raw_gate(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    mapping: Mapping,
    max_missing_customer_share: float = 0.5,
    max_unparseable_share: float = 0.05,
) -> GateResult:
    """Raw: the file has lines, its columns are all there, and its values mostly parse.

    A few unparseable values are rejected line by line in staging; many mean the export itself is
    wrong (a shifted column, another date format) and must stop the run.
    """
    rows = row_count(conn, table)
    present = {name for (name,) in conn.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()}
    missing = [c for c in CANONICAL_COLUMNS if c not in present]
    outcomes = [
        fact("the file has at least one transaction line", f"{rows:,} lines", rows > 0),
        fact(
            "every canonical column is present",
            f"missing: {', '.join(missing)}" if missing else "all present",
            not missing,
        ),
    ]
    allowed = 1 - max_unparseable_share
    price = "line_total" if "line_total" in mapping.columns else "unit_price"
    parses = [
        ("invoice_date", "invoice_ts", "invoice dates parse"),
        ("quantity", "quantity_num", "quantities are numbers"),
        (
            price,
            "unit_price_exact",
            "unit prices are numbers" if price == "unit_price" else "line totals are numbers",
        ),
    ]
    rules = [
        ColumnRule(
            "ExpectColumnValuesToBeNull",
            f"{column}_unparsed",
            f"{words} (at least {allowed:.0%})",
            mostly=allowed,
        )
        for column, _, words in parses
    ]
    rules.append(
        ColumnRule(
            "ExpectColumnValuesToNotBeNull",
            "customer_key",
            f"lines have a customer id (at least {1 - max_missing_customer_share:.0%})",
            mostly=1 - max_missing_customer_share,
        )
    )
    if rows and not missing:
        # The values as the load parsed them; a value that failed is shown as the file wrote it, so the
        # check's examples show what is wrong ('£2.55', '31/02/2024') rather than a NULL.
        unparsed = ", ".join(
            f"CASE WHEN {value} IS NULL THEN coalesce({column}, '(blank)') END AS {column}_unparsed"
            for column, value, _ in parses
        )
        # Whether a customer id is there is all the rule needs: a one-byte flag, not the id's text.
        has_customer = "CASE WHEN customer_key IS NOT NULL THEN 1 END::TINYINT AS customer_key"
        sql = f"SELECT {unparsed}, {has_customer} FROM {table}"
        outcomes += check_columns(conn, sql, rules)
    return GateResult("raw", str(table.live), tuple(outcomes))


def staging_gate(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    rejected: Table,
    run_date: dt.date,
    earliest_date: dt.date,
    max_rejected_share: float = 0.75,
) -> GateResult:
    """Staging: unique invoice lines, positive sales, plausible dates, a customer on every line."""
    clean = row_count(conn, table)
    refused = row_count(conn, rejected)
    # Staging's columns are the typed forms of cleaning's line key, under their canonical names.
    key = ", ".join(CANONICAL_COLUMNS)
    # Exact, but cheap: only lines whose key hash repeats are compared value by value.
    repeated = conn.execute(
        f"SELECT count(*) - count(DISTINCT ({key})) FROM ({lines_sharing_a_key_hash_sql(table, key)})"
    ).fetchall()[0][0]
    first, last = conn.execute(f"SELECT min(invoice_date), max(invoice_date) FROM {table}").fetchall()[0]
    share = refused / (clean + refused) if clean + refused else 0.0
    # The rules that rejected most, with their counts and where a user changes them.
    most = (
        conn.execute(
            f"SELECT rule, count(*) FROM {rejected} GROUP BY rule ORDER BY 2 DESC, 1 LIMIT 3"
        ).fetchall()
        if "rule" in dict(column_types(conn, rejected))
        else []
    )
    named = "; ".join(
        f"{rule} {count:,}" + (f" (change: {RULE_REMEDIES[rule]})" if RULE_REMEDIES.get(rule) else "")
        for rule, count in most
    )
    window_end = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    outcomes = [
        fact("at least one clean line", f"{clean:,} clean lines", clean > 0),
        fact("each invoice line appears once", f"{repeated:,} repeated lines", repeated == 0),
        fact(
            f"invoice dates between {earliest_date} and the run date {run_date}",
            f"{first} to {last}",
            clean == 0 or (first >= dt.datetime.combine(earliest_date, dt.time()) and last < window_end),
        ),
        fact(
            f"at most {max_rejected_share:.0%} of lines rejected",
            f"{refused:,} of {clean + refused:,} rejected ({share:.1%})"
            + (f"; most: {named}" if named else ""),
            share <= max_rejected_share,
        ),
    ]
    rules = [
        ColumnRule("ExpectColumnValuesToNotBeNull", "customer_id", "every line has a customer id"),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "sale_quantity",
            "sales have a quantity of at least 1",
            {"min_value": 1, "max_value": FINITE_LIMIT},
        ),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "return_quantity",
            "returns have a negative quantity",
            {"max_value": -1, "min_value": -FINITE_LIMIT},
        ),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "unit_price",
            "unit prices are above zero",
            {"min_value": 0, "strict_min": True, "max_value": FINITE_LIMIT},
        ),
    ]
    if clean:
        outcomes += check_columns(
            conn,
            f"""SELECT CASE WHEN customer_id IS NOT NULL THEN 1 END::TINYINT AS customer_id,
                       CASE WHEN NOT is_return THEN quantity END AS sale_quantity,
                       CASE WHEN is_return THEN quantity END AS return_quantity,
                       CAST(unit_price AS DOUBLE) AS unit_price
                FROM {table}""",
            rules,
        )
    return GateResult("staging", str(table.live), tuple(outcomes))


MIN_CUSTOMERS = 3


def features_gate(conn: duckdb.DuckDBPyConnection, table: Table, rfm: bool = True) -> GateResult:
    """Features: one row per customer, enough customers to cluster, and sane finite R, F and M (where the
    source has them: a customer table may give other features only)."""
    rows, customers = conn.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {table}").fetchall()[0]
    outcomes = [
        fact("one row per customer", f"{rows:,} rows for {customers:,} customers", rows == customers),
        fact(
            f"at least {MIN_CUSTOMERS} customers with a purchase, enough for two clusters",
            f"{customers:,} customers",
            customers >= MIN_CUSTOMERS,
        ),
    ]
    rules = [
        ColumnRule("ExpectColumnValuesToNotBeNull", "recency_days", "recency is known for every customer"),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "recency_days",
            "recency is zero or more days",
            {"min_value": 0, "max_value": 100_000},
        ),
        ColumnRule("ExpectColumnValuesToNotBeNull", "frequency", "frequency is known for every customer"),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "frequency",
            "frequency is at least one purchase",
            {"min_value": 1, "max_value": FINITE_LIMIT},
        ),
        ColumnRule("ExpectColumnValuesToNotBeNull", "monetary", "net spend is a number (not NaN)"),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "monetary",
            "net spend is positive and finite",
            {"min_value": 0, "strict_min": True, "max_value": FINITE_LIMIT},
        ),
    ]
    if rows and rfm:
        outcomes += check_columns(conn, f"SELECT recency_days, frequency, monetary FROM {table}", rules)
    return GateResult("features", str(table.live), tuple(outcomes))


def value_gate(
    conn: duckdb.DuckDBPyConnection, table: Table, models: Table, features: Table, not_fitted: str = ""
) -> GateResult:
    """Value: one row per featured customer, fitted parameters finite and positive, probabilities in [0, 1],
    expectations and lifetime values finite and not negative. When the history cannot support the models
    (`not_fitted` says why), the values are empty, and the gate holds them to that."""
    rows, customers, missing = conn.execute(
        f"SELECT count(*), count(DISTINCT customer_id), "
        f"(SELECT count(*) FROM {features} ANTI JOIN {table} USING (customer_id)) FROM {table}"
    ).fetchall()[0]
    bad = conn.execute(
        f"SELECT string_agg(model || '.' || parameter || ' = ' || value, ', ') FROM {models} "
        "WHERE model <> 'settings' AND NOT (isfinite(value) AND value > 0)"
    ).fetchall()[0][0]
    outcomes = [
        fact("one row per customer", f"{rows:,} rows for {customers:,} customers", rows == customers),
        fact("every featured customer is valued", f"{missing:,} without a value", missing == 0),
        fact("the fitted parameters are finite and positive", bad or "all are", bad is None),
    ]
    if not_fitted:
        [(valued,)] = conn.execute(f"SELECT count(p_alive) + count(clv) FROM {table}").fetchall()
        outcomes.append(
            fact("without fitted models, no customer is valued", f"not fitted: {not_fitted}", valued == 0)
        )
        return GateResult("value", str(table.live), tuple(outcomes))
    rules = [
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "p_alive",
            "p_alive is a probability",
            {"min_value": 0, "max_value": 1},
        ),
        ColumnRule("ExpectColumnValuesToNotBeNull", "p_alive", "p_alive is known for every customer"),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "expected_purchases",
            "expected purchases are zero or more",
            {"min_value": 0, "max_value": FINITE_LIMIT},
        ),
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "clv",
            "lifetime value is finite and not negative",
            {"min_value": 0, "max_value": FINITE_LIMIT},
        ),
        ColumnRule("ExpectColumnValuesToNotBeNull", "clv", "lifetime value is a number (not NaN)"),
    ]
    if rows:
        outcomes += check_columns(conn, f"SELECT p_alive, expected_purchases, clv FROM {table}", rules)
    return GateResult("value", str(table.live), tuple(outcomes))


def segments_gate(conn: duckdb.DuckDBPyConnection, table: Table, features: Table, k: int) -> GateResult:
    """Segments: every featured customer in exactly one segment, k clusters, none of them empty."""
    unsegmented, unknown, repeated, clusters, segments = conn.execute(
        f"""
        SELECT
            (SELECT count(*) FROM {features} f ANTI JOIN {table} s USING (customer_id)),
            (SELECT count(*) FROM {table} s ANTI JOIN {features} f USING (customer_id)),
            (SELECT count(*) - count(DISTINCT customer_id) FROM {table}),
            (SELECT count(DISTINCT cluster) FROM {table}),
            (SELECT count(DISTINCT segment) FROM {table})
        """
    ).fetchall()[0]
    outcomes = [
        fact("every featured customer has a segment", f"{unsegmented:,} without one", unsegmented == 0),
        fact("no segment for a customer without features", f"{unknown:,} such rows", unknown == 0),
        fact("each customer has exactly one segment", f"{repeated:,} customers repeated", repeated == 0),
        fact(f"all {k} clusters have customers (none empty)", f"{clusters} clusters in use", clusters == k),
        fact(f"number of segments equals the chosen k = {k}", f"{segments} segments", segments == k),
    ]
    rules = [
        ColumnRule(
            "ExpectColumnValuesToBeBetween",
            "cluster",
            f"cluster ids run from 0 to {k - 1}",
            {"min_value": 0, "max_value": k - 1},
        ),
        ColumnRule("ExpectColumnValuesToNotBeNull", "segment", "every customer's segment is named"),
    ]
    outcomes += check_columns(conn, f"SELECT cluster, segment FROM {table}", rules)
    return GateResult("segments", str(table.live), tuple(outcomes))
