"""Staging: type the raw text, reject what cannot be trusted (keeping the reason), flag returns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from retail_seg.core.mappings import CANONICAL as RAW_COLUMNS
from retail_seg.core.mappings import Mapping, load_mappings
from retail_seg.core.parsing import INVOICE_NO, is_return_sql, mapping_parameters
from retail_seg.core.tables import CUSTOMERS, RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import bound, build_candidate, row_count, write_candidate

if TYPE_CHECKING:  # pandas loads only where a frame is made, not for the SQL
    import pandas as pd

GENDER_SPELLINGS = {
    "female": ("f", "female", "woman", "w", "fem", "girl", "mrs", "ms", "miss"),
    "male": ("m", "male", "man", "boy", "mr"),
    "other": ("other", "o", "x", "non-binary", "nonbinary", "diverse"),
}


@dataclass(frozen=True)
class CleaningResult:
    """Counts of a staging build."""

    clean_rows: int
    rejected_by_rule: dict[str, int]
    currency: str = ""
    """The currency every clean amount is in (the mapping's base, or the file's own): "" where unknown."""

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected_by_rule.values())


def _gender_sql(column: str) -> str:
    cases = " ".join(
        f"WHEN lower(trim({column})) IN ({', '.join(repr(s) for s in spellings)}) THEN '{gender}'"
        for gender, spellings in GENDER_SPELLINGS.items()
    )
    return f"CASE {cases} END"


# Lines without an invoice number (`parsing.INVOICE_NO`) are not refused: a customer's such lines are one
# invoice (`features._SUMS_SQL`).
# What identifies an invoice line once typed: two lines equal in all of these are one line posted twice.
LINE_KEY = (
    INVOICE_NO,
    "trim(stock_code)",
    "trim(description)",
    "quantity_num",
    "unit_price_exact",
    "invoice_ts",
    "customer_key",
    "trim(country)",
)


@dataclass(frozen=True)
class RejectionRule:
    """A reason to refuse a line: its name, the words a reader sees, and the SQL predicate that applies it.

    The predicate reads the typed line (`parsing.parsed_sql`, parsed beside the raw text as it loads) and
    the bound parameters of `clean_transactions`.
    """

    name: str
    words: str
    predicate: str
    remedy: str = ""
    """Where a user changes what the rule accepts, when a refused load shows it rejected too much."""


# Each rejected line carries the first rule it breaks, in this order: the wording and the SQL CASE that
# applies the rules are both generated from this one table.
REJECTION_RULES = (
    RejectionRule(
        "missing_customer_id",
        "no customer id, so the line cannot be attributed to a customer",
        "customer_key IS NULL",
        remedy="a guest checkout has no customer; load_rules max_missing_customer_share",
    ),
    RejectionRule(
        "unparseable_invoice_date",
        "invoice date is not a date",
        "invoice_ts IS NULL",
        remedy="the mapping's [dates] formats",
    ),
    RejectionRule(
        "invoice_date_out_of_range",
        "invoice date before the earliest plausible date or after the run date",
        "invoice_ts < $earliest OR invoice_ts >= $latest",
        remedy="load_rules earliest_date, run_date",
    ),
    RejectionRule(
        "quantity_not_a_number",
        "quantity is not a number",
        "quantity_num IS NULL OR isnan(quantity_num)",
        remedy="the mapping's [numbers]",
    ),
    RejectionRule(
        "unit_price_not_a_number",
        "unit price is not a number",
        "unit_price_exact IS NULL",
        remedy="the mapping's [numbers]",
    ),
    RejectionRule(
        "unconvertible_currency",
        "in a currency other than the base currency, with no rate to convert it (the mapping's [currency])",
        "currency_rate IS NULL",
        remedy="the mapping's [currency] code and rates",
    ),
    RejectionRule(
        "bad_debt_adjustment",
        "an accounting adjustment (an invoice prefix the mapping declares, e.g. UCI's A), not a sale",
        "$adjustment_prefix IS NOT NULL AND starts_with(upper(trim(invoice_no)), $adjustment_prefix)",
        remedy="the mapping's [rules] adjustment_prefix",
    ),
    RejectionRule(
        "non_product_line",
        "postage, fees, discounts, manual entries, samples or vouchers (codes the mapping declares)",
        "list_contains($non_product_codes, upper(trim(stock_code))) OR len(list_filter("
        "$non_product_prefixes, lambda prefix: starts_with(upper(trim(stock_code)), prefix))) > 0",
        remedy="the mapping's [rules] non_product_codes, non_product_prefixes",
    ),
    RejectionRule(
        "cancelled_order",
        "the order was refused, refunded or voided in full (a status the mapping declares)",
        "list_contains($cancelled_statuses, lower(trim(status)))",
        remedy="the mapping's [rules] cancelled_statuses",
    ),
    RejectionRule("zero_quantity", "quantity is zero", "quantity_num = 0", remedy="the export itself"),
    RejectionRule(
        "fractional_quantity", "quantity is not a whole number", "quantity_num <> round(quantity_num)"
    ),
    RejectionRule("non_positive_unit_price", "unit price is zero or negative", "unit_price_exact <= 0"),
    RejectionRule(
        "absurd_quantity",
        "a quantity far beyond what the product's lines usually carry (an entry error, not a large order)",
        "($max_abs_quantity IS NOT NULL AND abs(quantity_num) > $max_abs_quantity) OR "
        "($absurd_factor IS NOT NULL AND abs(quantity_num) > $absurd_factor * typical.quantity)",
        remedy="load_rules absurd_quantity_factor, max_abs_quantity",
    ),
    RejectionRule(
        "duplicate_line",
        "repeats an earlier line: same invoice, product, quantity, price, date and customer",
        "d.source_row IS NOT NULL",
    ),
)
RULE_WORDS = {rule.name: rule.words for rule in REJECTION_RULES}
RULE_REMEDIES = {rule.name: rule.remedy for rule in REJECTION_RULES}


def _first_rule_broken_sql() -> str:
    """The name of the first rule a line breaks, or NULL for a clean line."""
    cases = "\n".join(f"WHEN {rule.predicate} THEN '{rule.name}'" for rule in REJECTION_RULES)
    return f"CASE {cases} END"


def _typed_sql(mapping: Mapping) -> str:
    """The raw lines (parsed as they were loaded) with their return mark and currency rate, as `typed`.

    NOT MATERIALIZED: DuckDB would otherwise store every line of a CTE read more than once.
    """
    # The rate of a line's currency to the base: 1 for the base (or no currency), a declared rate, or
    # NULL, which the rules refuse rather than add amounts in different currencies together.
    currency = "nullif(upper(trim(currency)), '')"
    rate = f"CASE WHEN {currency} IS NULL OR {currency} = $base_currency THEN CAST(1 AS DECIMAL(18, 8))"
    rate += " ELSE _rates.rate END" if mapping.rates else " END"
    joined = " LEFT JOIN _rates ON _rates.rate_currency = upper(trim(currency))" if mapping.rates else ""
    return f"""
    typed AS NOT MATERIALIZED (
        SELECT {RAW_TRANSACTIONS.name}.*, {is_return_sql(mapping)} AS is_return_line,
               {rate} AS currency_rate
        FROM {RAW_TRANSACTIONS}{joined}
    )
"""


def lines_sharing_a_key_hash_sql(source: str, key: str) -> str:
    """The lines of `source` whose `key` hashes like another line's: every repeated key, and the odd hash
    collision, without sorting the whole table. Only these few need comparing value by value. The hash
    is computed twice rather than kept in a CTE read twice, which DuckDB would store line by line."""
    return f"""
        SELECT * FROM {source}
        WHERE hash({key}) IN (SELECT hash({key}) AS h FROM {source} GROUP BY h HAVING count(*) > 1)
    """


def _duplicates_sql(mapping: Mapping) -> str:
    """Repeated lines: every copy after the first, in file order, is a duplicate."""
    return f"""
    WITH {_typed_sql(mapping)},
    candidates AS ({lines_sharing_a_key_hash_sql("typed", ", ".join(LINE_KEY))})
    SELECT source_file, source_row
    FROM (
        SELECT source_file, source_row,
               row_number() OVER (PARTITION BY {", ".join(LINE_KEY)} ORDER BY source_file, source_row) AS copy
        FROM candidates
    )
    WHERE copy > 1
"""


# What a product's lines usually carry, by which an entry error (80,995 of a paper craft) stands out.
_TYPICAL_SQL = """
    SELECT upper(trim(stock_code)) AS code, median(abs(quantity_num)) AS quantity
    FROM typed
    WHERE quantity_num IS NOT NULL AND quantity_num <> 0 AND NOT isnan(quantity_num)
    GROUP BY code
"""


# Every quantity a product's lines carry, counted: the part of `_TYPICAL_SQL` a load keeps, so that the
# history can take the median over all its loads (a median of medians would not be the file's median).
_PRODUCT_QUANTITIES_SQL = """
    SELECT upper(trim(stock_code)) AS code, abs(quantity_num) AS quantity, count(*) AS lines
    FROM typed
    WHERE quantity_num IS NOT NULL AND quantity_num <> 0 AND NOT isnan(quantity_num)
    GROUP BY ALL
"""


def _rejected_sql(mapping: Mapping) -> str:
    """Every line that breaks a rule, as its raw text, with its place in the file and the first rule it
    breaks: the one pass that judges. The clean lines are then the rest of the file."""
    return f"""
    WITH {_typed_sql(mapping)}
    SELECT load_id, source_file, source_row, rule, {", ".join(RAW_COLUMNS)}
    FROM (
        SELECT typed.*, {_first_rule_broken_sql()} AS rule
        FROM typed
        LEFT JOIN _duplicates d USING (source_file, source_row)
        LEFT JOIN _typical typical ON typical.code = upper(trim(typed.stock_code))
    )
    WHERE rule IS NOT NULL
"""


# Spreadsheet round-trips write "nan" for a missing description, and a UTF-8 "£" read as Latin-1
# becomes "Â£": the stray "Â" before a Latin-1 symbol is dropped.
_DESCRIPTION_SQL = (
    "CASE WHEN lower(trim(description)) IN ('', 'nan', 'null', 'none') THEN NULL "
    "ELSE regexp_replace(trim(description), 'Â([\\x{A0}-\\x{BF}])', '\\1', 'g') END"
)


def _clean_sql(mapping: Mapping) -> str:
    # A return's quantity and total are negative whatever sign the export wrote; line totals an export
    # gives are kept exactly, others are quantity × unit price. Amounts are in the base currency.
    quantity = "CAST(CASE WHEN is_return_line THEN -abs(quantity_num) ELSE quantity_num END AS BIGINT)"
    price = "CAST(unit_price_exact * currency_rate AS DECIMAL(18, 4))"
    signed = "CASE WHEN is_return_line THEN -abs(line_total_exact) ELSE abs(line_total_exact) END"
    total = (
        f"CASE WHEN line_total_exact IS NOT NULL THEN CAST({signed} * currency_rate AS DECIMAL(18, 4)) "
        f"ELSE {quantity} * {price} END"
    )
    return f"""
    WITH {_typed_sql(mapping)}
    SELECT
        {INVOICE_NO} AS invoice_no,
        trim(stock_code) AS stock_code,
        {_DESCRIPTION_SQL} AS description,
        {quantity} AS quantity,
        {price} AS unit_price,
        invoice_ts AS invoice_date,
        customer_key AS customer_id,
        nullif(trim(country), '') AS country,
        CASE WHEN try_cast(trim(age) AS DOUBLE) BETWEEN 0 AND 120
             THEN CAST(round(try_cast(trim(age) AS DOUBLE)) AS INTEGER) END AS age,
        {_gender_sql("gender")} AS gender,
        nullif(trim(product_category), '') AS product_category,
        is_return_line AS is_return,
        {total} AS line_total,
        load_id,
        source_row
    FROM typed ANTI JOIN {REJECTED_ROWS.candidate} USING (source_file, source_row)
"""


def raw_mapping(conn: duckdb.DuckDBPyConnection, mappings: tuple[Mapping, ...]) -> Mapping:
    """The mapping the lines of `raw.transactions` were loaded by (a source's files share one)."""
    names = [
        name for (name,) in conn.execute(f"SELECT DISTINCT source_format FROM {RAW_TRANSACTIONS}").fetchall()
    ]
    found = [m for m in mappings if m.name in names]
    if len(names) != 1 or not found:
        raise ValueError(
            f"{RAW_TRANSACTIONS} holds lines of {names or 'no'} mapping; expected exactly one known"
        )
    return found[0]


def clean_transactions(
    conn: duckdb.DuckDBPyConnection,
    run_date: dt.date,
    mapping: Mapping | None = None,
    max_abs_quantity: int | None = None,
    absurd_factor: float | None = 1000.0,
    earliest_date: dt.date = dt.date(1900, 1, 1),
    product_quantities: Path | None = None,
    written: tuple[Path, Path] | None = None,
) -> CleaningResult:
    """Build the candidates of `staging.transactions` and `staging.rejected_rows` from `raw.transactions`.

    Every raw row lands in exactly one of the two, typed by `mapping` (by default the built-in one the
    lines were loaded by). Returns, as the mapping marks them, stay as returns: they reduce what a
    customer spent. Lines dated after `run_date` cannot have happened yet; before `earliest_date` they
    are taken for a wrong century. A quantity is absurd beyond `absurd_factor` times what the product's
    lines usually carry, or beyond `max_abs_quantity` when set; None turns either off. With
    `product_quantities`, the quantities each product's lines carry are written there as Parquet (code,
    quantity, lines), for a history to judge quantities over all its files. With `written` (two paths),
    the clean and the rejected lines are written there as Parquet and the candidates are views over them.
    """
    mapping = mapping or raw_mapping(conn, load_mappings())
    [(dominant,)] = conn.execute(
        f"SELECT mode(nullif(upper(trim(currency)), '')) FROM {RAW_TRANSACTIONS}"
    ).fetchall()
    params = {
        **mapping_parameters(mapping),
        "base_currency": (mapping.currency or dominant or "").upper(),
        "max_abs_quantity": max_abs_quantity,
        "absurd_factor": absurd_factor,
        "earliest": dt.datetime.combine(earliest_date, dt.time()),
        "latest": dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time()),
    }
    conn.execute("CREATE OR REPLACE TEMP TABLE _rates (rate_currency VARCHAR, rate DECIMAL(18, 8))")
    conn.executemany("INSERT INTO _rates VALUES (?, ?)", list(mapping.rates.items()) or [("", 1)])
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _duplicates AS {_duplicates_sql(mapping)}",
            bound(_duplicates_sql(mapping), params),
        )
        typical = f"WITH {_typed_sql(mapping)} {_TYPICAL_SQL}"
        if absurd_factor is None:  # the rule reads no typical quantity: an empty table, not a pass
            typical += " LIMIT 0"
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _typical AS {typical}", bound(typical, params))
        if product_quantities is not None:
            counted = f"WITH {_typed_sql(mapping)} {_PRODUCT_QUANTITIES_SQL}"
            target = str(product_quantities).replace("'", "''")
            conn.execute(f"COPY ({counted}) TO '{target}' (FORMAT parquet)", bound(counted, params))
        # One pass judges every line and writes the rejected ones (usually few) with their text and rule;
        # the clean lines are the rest, written in a streaming pass that judges nothing again. A
        # materialized table of every judged line would cost time and memory at ten million lines, and
        # joining the rejected lines' text back from the file would cost a pass over it.
        clean_path, rejected_path = written or (None, None)
        for table, sql, path in (
            (REJECTED_ROWS, _rejected_sql(mapping), rejected_path),
            (STAGING_TRANSACTIONS, _clean_sql(mapping), clean_path),
        ):
            if path is None:
                build_candidate(conn, table, sql, bound(sql, params))
            else:
                write_candidate(conn, table, sql, bound(sql, params), path)
    finally:
        for temporary in ("_duplicates", "_typical", "_rates"):
            conn.execute(f"DROP TABLE IF EXISTS {temporary}")
    by_rule = dict(
        conn.execute(
            f"SELECT rule, count(*) FROM {REJECTED_ROWS.candidate} GROUP BY rule ORDER BY rule"
        ).fetchall()
    )
    clean = row_count(conn, STAGING_TRANSACTIONS.candidate)
    return CleaningResult(clean_rows=clean, rejected_by_rule=by_rule, currency=params["base_currency"])


_CUSTOMERS_SQL = f"""
    SELECT
        customer_id,
        mode(age) AS age,
        mode(gender) AS gender,
        mode(country) AS country,
        min(invoice_date) AS first_seen,
        max(invoice_date) AS last_seen,
        count(*) AS lines,
        count(DISTINCT stock_code) FILTER (WHERE NOT is_return) AS distinct_products
    FROM {STAGING_TRANSACTIONS}
    GROUP BY customer_id
    ORDER BY customer_id
"""


@dataclass(frozen=True)
class CustomerBuild:
    """Counts of a customer build: how many customers, and how many the source gave demographics for."""

    customers: int
    with_age: int
    with_gender: int


def build_customers(conn: duckdb.DuckDBPyConnection) -> CustomerBuild:
    """Build `staging.customers`'s candidate: one row per customer with the demographics the source has,
    when they were first and last seen, their lines and how many distinct products they bought.

    A customer's age, gender and country are the values their lines give most often, so one mistyped
    line does not move them.
    """
    from retail_seg.core.customer_tables import customers_sql, history_grain

    build_candidate(
        conn, CUSTOMERS, customers_sql(conn) if history_grain(conn) == "customers" else _CUSTOMERS_SQL
    )
    counts = conn.execute(
        f"SELECT count(*), count(age), count(gender) FROM {CUSTOMERS.candidate}"
    ).fetchall()[0]
    return CustomerBuild(*counts)


def rejected_by_rule(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Published rejected lines counted by rule, most frequent first."""
    return conn.sql(
        f"SELECT rule, count(*) AS lines FROM {REJECTED_ROWS} GROUP BY rule ORDER BY 2 DESC, 1"
    ).df()
