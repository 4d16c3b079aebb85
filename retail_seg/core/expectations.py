"""How a gate's rules are evaluated and reported.

Column-level rules are Great Expectations (GX Core 1.x) expectations, run on pandas frames that hold
only the columns a rule needs, one chunk at a time, so memory stays flat however long the table is.
GX's SQL datasource does not work on DuckDB (FIELD-NOTES.md), and whole-table properties such as key
uniqueness would need the whole table in one frame, so those are single DuckDB queries. Both kinds
report the same way: a rule in plain words, what was observed, and whether it held.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import pandas as pd

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


@functools.cache
def gx_context():
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
    """The rows of `sql` as frames of about CHUNK_ROWS rows. DuckDB streams far smaller batches (some
    hundred thousand rows), and each validation costs GX a tenth of a second before it reads a row: the
    batches are gathered first, so a ten-million-line table is ten validations, not eighty."""
    import pyarrow as pa

    def frame(batches: list) -> pd.DataFrame:
        # Text as categories: a mostly-empty column of failed values costs codes, not a Python object
        # per row.
        return pa.Table.from_batches(batches).to_pandas(strings_to_categorical=True)

    # A cursor of its own, so the streamed result never collides with the caller's open results.
    with conn.cursor() as cursor:
        gathered, rows = [], 0
        for batch in cursor.sql(sql, params=params).to_arrow_reader(CHUNK_ROWS):
            gathered.append(batch)
            rows += batch.num_rows
            if rows >= CHUNK_ROWS:
                yield frame(gathered)
                gathered, rows = [], 0
        if gathered:
            yield frame(gathered)


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
    gx, gxe, batch_definition = gx_context()
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


def fact(rule: str, observed: object, passed: bool) -> Outcome:
    """A whole-table rule's outcome, evaluated in DuckDB."""
    return Outcome(rule=rule, observed=str(observed), passed=bool(passed), engine="duckdb")
