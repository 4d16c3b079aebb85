"""Quality gates: one suite per layer, run on a candidate table before it may replace the live one.

Column-level rules are Great Expectations (GX Core 1.x) expectations, run on pandas frames that hold
only the columns a rule needs, one chunk at a time, so memory stays flat however long the table is.
GX's SQL datasource does not work on DuckDB (FIELD-NOTES.md), and whole-table properties such as key
uniqueness would need the whole table in one frame, so those are single DuckDB queries. Both kinds
report the same way: a rule in plain words, what was observed, and whether it held.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from retail_seg.core.cleaning import PARSED
from retail_seg.core.formats import CANONICAL_COLUMNS
from retail_seg.core.warehouse import Table

CHUNK_ROWS = 1_000_000
# Largest value a money or count column may hold; beyond it is an overflow or an infinity.
FINITE_LIMIT = 1e15


@dataclass(frozen=True)
class Outcome:
    """One rule of a suite and how the data fared against it."""

    rule: str
    observed: str
    passed: bool
    engine: str

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "observed": self.observed, "passed": self.passed, "engine": self.engine}


@dataclass(frozen=True)
class GateResult:
    """A suite's verdict on a candidate table."""

    gate: str
    table: str
    outcomes: tuple[Outcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    def message(self) -> str:
        """What failed, in words a data engineer can act on."""
        if self.passed:
            return f"{self.gate} gate passed on {self.table}: {len(self.outcomes)} rules held"
        failed = "; ".join(f"{o.rule} (observed: {o.observed})" for o in self.failures)
        return f"{self.gate} gate failed on {self.table}: {failed}"


@dataclass(frozen=True)
class ColumnRule:
    """A GX column expectation, the share of non-null values that must meet it, and its plain words."""

    expectation: str
    column: str
    rule: str
    kwargs: dict[str, object] = field(default_factory=dict)
    mostly: float = 1.0


class QualityGateError(RuntimeError):
    """A candidate failed its gate; the live table was left as it was."""

    def __init__(self, result: GateResult):
        super().__init__(result.message())
        self.result = result


@functools.cache
def _gx():
    """Import GX once, quietly: it costs seconds, and its analytics and progress bars are noise here."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batches = context.data_sources.add_pandas("retail_seg").add_dataframe_asset("frame")
    return gx, gxe, batches.add_batch_definition_whole_dataframe("whole")


def _chunks(conn: duckdb.DuckDBPyConnection, sql: str, params) -> Iterator[pd.DataFrame]:
    # A cursor of its own, so the streamed result never collides with the caller's open results.
    with conn.cursor() as cursor:
        for batch in cursor.sql(sql, params=params).to_arrow_reader(CHUNK_ROWS):
            yield batch.to_pandas()


def _sample_values(result: dict) -> str:
    counts = result.get("partial_unexpected_counts", [])
    examples = [str(item["value"]) for item in counts if item["value"] is not None][:3]
    return f"; e.g. {', '.join(examples)}" if examples else ""


def check_columns(
    conn: duckdb.DuckDBPyConnection, sql: str, rules: list[ColumnRule], params=None
) -> list[Outcome]:
    """Run GX column expectations over the rows of `sql`, chunk by chunk, and add the counts up.

    Each rule holds when the failing share of non-null values is at most 1 - mostly over the whole
    table, which is what GX would decide on one frame holding everything.
    """
    gx, gxe, batch_definition = _gx()
    suite = gx.ExpectationSuite(name="chunk")
    for rule in rules:
        expectation = getattr(gxe, rule.expectation)(column=rule.column, mostly=rule.mostly, **rule.kwargs)
        suite.add_expectation(expectation)
    counted = [0] * len(rules)
    unexpected = [0] * len(rules)
    examples = [""] * len(rules)
    for chunk in _chunks(conn, sql, params or []):
        validation = batch_definition.get_batch(batch_parameters={"dataframe": chunk}).validate(suite)
        for i, result in enumerate(validation.results):
            details = result.result
            counted[i] += details.get("element_count", 0) - details.get("missing_count", 0)
            unexpected[i] += details.get("unexpected_count", 0)
            examples[i] = examples[i] or _sample_values(details)
    outcomes = []
    for i, rule in enumerate(rules):
        share = unexpected[i] / counted[i] if counted[i] else 0.0
        outcomes.append(
            Outcome(
                rule=rule.rule,
                observed=f"{unexpected[i]:,} of {counted[i]:,} values fail ({share:.2%}){examples[i]}",
                passed=share <= (1 - rule.mostly) + 1e-12,
                engine=f"great_expectations:{rule.expectation}",
            )
        )
    return outcomes


def _fact(rule: str, observed: object, passed: bool) -> Outcome:
    return Outcome(rule=rule, observed=str(observed), passed=bool(passed), engine="duckdb")


def _row_count(conn: duckdb.DuckDBPyConnection, table: Table) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def raw_gate(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    max_missing_customer_share: float = 0.5,
    max_unparseable_share: float = 0.05,
) -> GateResult:
    """Raw: the file has lines, its columns are all there, and its values mostly parse.

    A few unparseable values are rejected line by line in staging; many mean the export itself is
    wrong (a shifted column, another date format) and must stop the run.
    """
    rows = _row_count(conn, table)
    present = {name for (name,) in conn.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()}
    missing = [c for c in CANONICAL_COLUMNS if c not in present]
    outcomes = [
        _fact("the file has at least one transaction line", f"{rows:,} lines", rows > 0),
        _fact(
            "every canonical column is present",
            f"missing: {', '.join(missing)}" if missing else "all present",
            not missing,
        ),
    ]
    allowed = 1 - max_unparseable_share
    parses = [
        ("invoice_date", "invoice_ts", "invoice dates parse"),
        ("quantity", "quantity_num", "quantities are numbers"),
        ("unit_price", "unit_price_exact", "unit prices are numbers"),
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
        # The parsing staging applies; a value that fails it is kept as the file wrote it, so the
        # check's examples show what is wrong ('£2.55', '31/02/2024') rather than a NULL.
        unparsed = ", ".join(
            f"CASE WHEN {PARSED[parsed]} IS NULL THEN coalesce({column}, '(blank)') END AS {column}_unparsed"
            for column, parsed, _ in parses
        )
        sql = f"SELECT {unparsed}, {PARSED['customer_key']} AS customer_key FROM {table}"
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
    clean = _row_count(conn, table)
    refused = _row_count(conn, rejected)
    # Staging's columns are the typed forms of cleaning's line key, under their canonical names.
    key = ", ".join(CANONICAL_COLUMNS)
    distinct = conn.execute(f"SELECT count(DISTINCT ({key})) FROM {table}").fetchall()[0][0]
    first, last = conn.execute(f"SELECT min(invoice_date), max(invoice_date) FROM {table}").fetchall()[0]
    share = refused / (clean + refused) if clean + refused else 0.0
    window_end = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    outcomes = [
        _fact("at least one clean line", f"{clean:,} clean lines", clean > 0),
        _fact("each invoice line appears once", f"{clean - distinct:,} repeated lines", distinct == clean),
        _fact(
            f"invoice dates between {earliest_date} and the run date {run_date}",
            f"{first} to {last}",
            clean == 0 or (first >= dt.datetime.combine(earliest_date, dt.time()) and last < window_end),
        ),
        _fact(
            f"at most {max_rejected_share:.0%} of lines rejected",
            f"{refused:,} of {clean + refused:,} rejected ({share:.1%})",
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
            f"""SELECT customer_id,
                       CASE WHEN NOT is_return THEN quantity END AS sale_quantity,
                       CASE WHEN is_return THEN quantity END AS return_quantity,
                       CAST(unit_price AS DOUBLE) AS unit_price
                FROM {table}""",
            rules,
        )
    return GateResult("staging", str(table.live), tuple(outcomes))


MIN_CUSTOMERS = 3


def features_gate(conn: duckdb.DuckDBPyConnection, table: Table) -> GateResult:
    """Features: one row per customer, enough customers to cluster, and sane finite R, F and M."""
    rows, customers = conn.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {table}").fetchall()[0]
    outcomes = [
        _fact("one row per customer", f"{rows:,} rows for {customers:,} customers", rows == customers),
        _fact(
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
    if rows:
        outcomes += check_columns(conn, f"SELECT recency_days, frequency, monetary FROM {table}", rules)
    return GateResult("features", str(table.live), tuple(outcomes))


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
        _fact("every featured customer has a segment", f"{unsegmented:,} without one", unsegmented == 0),
        _fact("no segment for a customer without features", f"{unknown:,} such rows", unknown == 0),
        _fact("each customer has exactly one segment", f"{repeated:,} customers repeated", repeated == 0),
        _fact(f"all {k} clusters have customers (none empty)", f"{clusters} clusters in use", clusters == k),
        _fact(f"number of segments equals the chosen k = {k}", f"{segments} segments", segments == k),
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
