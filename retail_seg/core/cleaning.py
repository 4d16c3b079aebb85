"""Staging: type the raw text, reject what cannot be trusted (keeping the reason), flag returns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from retail_seg.core.formats import RAW_COLUMNS, UCI_CODED_FORMATS
from retail_seg.core.tables import CUSTOMERS, RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import build_candidate, row_count

if TYPE_CHECKING:  # pandas loads only where a frame is made, not for the SQL
    import pandas as pd

# Stock codes of lines that are not products, as the UCI exports write them (upper-cased), and the
# prefixes of voucher and marketplace codes: postage is not what a customer buys, and a manual
# correction or a discount would make spend mean something else.
NON_PRODUCT_CODES = [
    "POST",
    "DOT",
    "C2",
    "M",
    "D",
    "S",
    "B",
    "BANK CHARGES",
    "AMAZONFEE",
    "CRUK",
    "PADS",
    "ADJUST",
    "ADJUST2",
    "TEST001",
    "TEST002",
]
NON_PRODUCT_PREFIXES = "^(GIFT_0001|DCGS)"

# Dates as the known exports write them; ISO is tried first by a plain cast.
DATE_FORMATS = ["%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%m/%d/%Y"]

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

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected_by_rule.values())


def _gender_sql(column: str) -> str:
    cases = " ".join(
        f"WHEN lower(trim({column})) IN ({', '.join(repr(s) for s in spellings)}) THEN '{gender}'"
        for gender, spellings in GENDER_SPELLINGS.items()
    )
    return f"CASE {cases} END"


# How raw text becomes typed values; NULL where it does not parse. Shared with the raw quality gate.
PARSED = {
    # Spreadsheets turn ids into floats ("17850.0"); the id is the text before the ".0".
    "customer_key": "nullif(regexp_replace(trim(customer_id), '\\.0+$', ''), '')",
    "invoice_ts": f"coalesce(try_cast(trim(invoice_date) AS TIMESTAMP), "
    f"try_strptime(trim(invoice_date), {DATE_FORMATS!r}))",
    "quantity_num": "try_cast(trim(quantity) AS DOUBLE)",
    # Money is summed exactly, so returns that cancel a purchase net to zero, not to 1e-14. Through
    # DOUBLE first so that '1e-3' and Parquet's float text parse too.
    "unit_price_exact": "try_cast(try_cast(trim(unit_price) AS DOUBLE) AS DECIMAL(18, 4))",
}

# What identifies an invoice line once typed: two lines equal in all of these are one line posted twice.
LINE_KEY = (
    "trim(invoice_no)",
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

    The predicate reads the typed line (the `PARSED` columns beside the raw text) and the bound
    parameters of `clean_transactions`.
    """

    name: str
    words: str
    predicate: str


# Each rejected line carries the first rule it breaks, in this order: the wording and the SQL CASE that
# applies the rules are both generated from this one table.
REJECTION_RULES = (
    RejectionRule(
        "missing_customer_id",
        "no customer id, so the line cannot be attributed to a customer",
        "customer_key IS NULL",
    ),
    RejectionRule("unparseable_invoice_date", "invoice date is not a date", "invoice_ts IS NULL"),
    RejectionRule(
        "invoice_date_out_of_range",
        "invoice date before the earliest plausible date or after the run date",
        "invoice_ts < $earliest OR invoice_ts >= $latest",
    ),
    RejectionRule(
        "quantity_not_a_number", "quantity is not a number", "quantity_num IS NULL OR isnan(quantity_num)"
    ),
    RejectionRule("unit_price_not_a_number", "unit price is not a number", "unit_price_exact IS NULL"),
    RejectionRule(
        "bad_debt_adjustment",
        "an accounting adjustment (A-prefixed invoice), not a sale",
        "list_contains($uci_formats, source_format) AND upper(trim(invoice_no)) LIKE 'A%'",
    ),
    RejectionRule(
        "non_product_line",
        "postage, fees, discounts, manual entries, samples or vouchers, not a product sold",
        "list_contains($uci_formats, source_format) AND (list_contains($non_product_codes, "
        "upper(trim(stock_code))) OR regexp_matches(upper(trim(stock_code)), $non_product_prefixes))",
    ),
    RejectionRule("zero_quantity", "quantity is zero", "quantity_num = 0"),
    RejectionRule(
        "fractional_quantity", "quantity is not a whole number", "quantity_num <> round(quantity_num)"
    ),
    RejectionRule("non_positive_unit_price", "unit price is zero or negative", "unit_price_exact <= 0"),
    RejectionRule(
        "absurd_quantity",
        "quantity beyond the plausible maximum (in either direction)",
        "abs(quantity_num) > $max_abs_quantity",
    ),
    RejectionRule(
        "duplicate_line",
        "repeats an earlier line: same invoice, product, quantity, price, date and customer",
        "d.source_row IS NOT NULL",
    ),
)
RULE_WORDS = {rule.name: rule.words for rule in REJECTION_RULES}


def _first_rule_broken_sql() -> str:
    """The name of the first rule a line breaks, or NULL for a clean line."""
    cases = "\n".join(f"WHEN {rule.predicate} THEN '{rule.name}'" for rule in REJECTION_RULES)
    return f"CASE {cases} END"


# NOT MATERIALIZED: DuckDB would otherwise store every typed line of a CTE read more than once, which
# at ten million lines doubled the cleaning's time and its memory.
_TYPED = f"""
    typed AS NOT MATERIALIZED (
        SELECT *, {", ".join(f"{expr} AS {name}" for name, expr in PARSED.items())}
        FROM {RAW_TRANSACTIONS}
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


# Repeated lines: every copy after the first, in file order, is a duplicate.
_DUPLICATES_SQL = f"""
    WITH {_TYPED},
    candidates AS ({lines_sharing_a_key_hash_sql("typed", ", ".join(LINE_KEY))})
    SELECT source_file, source_row
    FROM (
        SELECT source_file, source_row,
               row_number() OVER (PARTITION BY {", ".join(LINE_KEY)} ORDER BY source_file, source_row) AS copy
        FROM candidates
    )
    WHERE copy > 1
"""

_JUDGED = f"""
    {_TYPED},
    judged AS (
        SELECT typed.*,
            {_first_rule_broken_sql()} AS rule
        FROM typed LEFT JOIN _duplicates d USING (source_file, source_row)
    )
"""

# Spreadsheet round-trips write "nan" for a missing description, and a UTF-8 "£" read as Latin-1
# becomes "Â£": the stray "Â" before a Latin-1 symbol is dropped.
_DESCRIPTION_SQL = (
    "CASE WHEN lower(trim(description)) IN ('', 'nan', 'null', 'none') THEN NULL "
    "ELSE regexp_replace(trim(description), 'Â([\\x{A0}-\\x{BF}])', '\\1', 'g') END"
)

_CLEAN_SQL = f"""
    WITH {_JUDGED}
    SELECT
        trim(invoice_no) AS invoice_no,
        trim(stock_code) AS stock_code,
        {_DESCRIPTION_SQL} AS description,
        CAST(quantity_num AS BIGINT) AS quantity,
        unit_price_exact AS unit_price,
        invoice_ts AS invoice_date,
        customer_key AS customer_id,
        nullif(trim(country), '') AS country,
        CASE WHEN try_cast(trim(age) AS DOUBLE) BETWEEN 0 AND 120
             THEN CAST(round(try_cast(trim(age) AS DOUBLE)) AS INTEGER) END AS age,
        {_gender_sql("gender")} AS gender,
        nullif(trim(product_category), '') AS product_category,
        (upper(trim(invoice_no)) LIKE 'C%' OR quantity_num < 0) AS is_return,
        CAST(quantity_num AS BIGINT) * unit_price_exact AS line_total,
        load_id,
        source_row
    FROM judged
    WHERE rule IS NULL
"""

_REJECTED_SQL = f"""
    WITH {_JUDGED}
    SELECT load_id, source_file, source_row, rule, {", ".join(RAW_COLUMNS)}
    FROM judged
    WHERE rule IS NOT NULL
"""


def clean_transactions(
    conn: duckdb.DuckDBPyConnection,
    run_date: dt.date,
    max_abs_quantity: int = 10_000,
    earliest_date: dt.date = dt.date(2000, 1, 1),
) -> CleaningResult:
    """Build the candidates of `staging.transactions` and `staging.rejected_rows` from `raw.transactions`.

    Every raw row lands in exactly one of the two. Cancellations (`C` invoices, negative quantities)
    stay as returns: they reduce what a customer spent. Lines dated after `run_date` cannot have
    happened yet and are rejected.
    """
    params = {
        "uci_formats": UCI_CODED_FORMATS,
        "non_product_codes": NON_PRODUCT_CODES,
        "non_product_prefixes": NON_PRODUCT_PREFIXES,
        "max_abs_quantity": max_abs_quantity,
        "earliest": dt.datetime.combine(earliest_date, dt.time()),
        "latest": dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time()),
    }
    # Two streaming passes over the raw lines (clean, rejected) rather than one materialized wide
    # table: at ten million lines the wide table, not the parsing, is what costs memory.
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _duplicates AS {_DUPLICATES_SQL}")
    try:
        build_candidate(conn, STAGING_TRANSACTIONS, _CLEAN_SQL, params)
        build_candidate(conn, REJECTED_ROWS, _REJECTED_SQL, params)
    finally:
        conn.execute("DROP TABLE IF EXISTS _duplicates")
    by_rule = dict(
        conn.execute(
            f"SELECT rule, count(*) FROM {REJECTED_ROWS.candidate} GROUP BY rule ORDER BY rule"
        ).fetchall()
    )
    clean = row_count(conn, STAGING_TRANSACTIONS.candidate)
    return CleaningResult(clean_rows=clean, rejected_by_rule=by_rule)


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
    build_candidate(conn, CUSTOMERS, _CUSTOMERS_SQL)
    counts = conn.execute(
        f"SELECT count(*), count(age), count(gender) FROM {CUSTOMERS.candidate}"
    ).fetchall()[0]
    return CustomerBuild(*counts)


def rejected_by_rule(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Published rejected lines counted by rule, most frequent first."""
    return conn.sql(
        f"SELECT rule, count(*) AS lines FROM {REJECTED_ROWS} GROUP BY rule ORDER BY 2 DESC, 1"
    ).df()
