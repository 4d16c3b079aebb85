"""How a gate's rules are evaluated and reported.

Column-level rules are Great Expectations (GX Core 1.x) expectations, run on pandas frames of each
rule column's distinct values, weighted by the rows that hold them, one chunk at a time, so memory
stays flat however long the table is and a ten-million-line gate costs one grouping pass, not ten
million rows through pandas.
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
import numpy as np
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _distinct_chunks(
    conn: duckdb.DuckDBPyConnection, sql: str, columns: list[str], params
) -> Iterator[tuple[pd.DataFrame, dict[str, np.ndarray]]]:
    """Each column's distinct values with the number of rows holding each, in one pass over `sql`, as
    frames of about CHUNK_ROWS values: a frame's row holds one column's value (the other columns are
    empty there), and the weights say, per column, how many rows of `sql` that frame row stands for
    (0 where the row is another column's)."""
    import pyarrow as pa

    quoted = [_quote(c) for c in columns]
    grouped = (
        f"SELECT {', '.join(quoted)}, "
        + ", ".join(f"GROUPING({q}) AS {_quote('_set_' + str(i))}" for i, q in enumerate(quoted))
        + f", count(*) AS _rows FROM ({sql}) GROUP BY GROUPING SETS ({', '.join(f'({q})' for q in quoted)})"
    )

    def frame(batches: list) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        table = pa.Table.from_batches(batches)
        rows = table.column("_rows").to_numpy()
        weights = {
            c: np.where(table.column(f"_set_{i}").to_numpy() == 0, rows, 0) for i, c in enumerate(columns)
        }
        return table.select(columns).to_pandas(), weights

    # A cursor of its own, so the streamed result never collides with the caller's open results.
    with conn.cursor() as cursor:
        gathered, held = [], 0
        for batch in cursor.sql(grouped, params=params).to_arrow_reader(CHUNK_ROWS):
            gathered.append(batch)
            held += batch.num_rows
            if held >= CHUNK_ROWS:
                yield frame(gathered)
                gathered, held = [], 0
        if gathered:
            yield frame(gathered)


def _examples(values: pd.Series, weights: np.ndarray, unexpected: list[int]) -> list[tuple[int, str]]:
    """The failing values a frame holds, with how many rows carry each."""
    return [
        (int(weights[i]), str(values.iloc[i])) for i in unexpected if weights[i] and pd.notna(values.iloc[i])
    ]


def check_columns(
    conn: duckdb.DuckDBPyConnection, sql: str, rules: list[ColumnRule], params=None
) -> list[Outcome]:
    """Run GX column expectations over the rows of `sql`, and count what they find row by row.

    Every expectation here judges each value on its own (a value passes or fails whatever the rows
    around it), so GX validates each column's distinct values once, and each verdict counts for every
    row that holds the value: the counts, and so the outcomes, are those of GX run on every row, at the
    cost of one grouping pass in DuckDB. Ten million lines with a few thousand distinct quantities are
    validated as a few thousand values. Each rule holds when the failing share of its counted rows
    (non-null rows for the expectations that skip nulls) is at most 1 - mostly.
    """
    gx, gxe, batch_definition = gx_context()
    suite = gx.ExpectationSuite(name="distinct values")
    for rule in rules:
        expectation = getattr(gxe, rule.expectation)(column=rule.column, mostly=rule.mostly, **rule.kwargs)
        suite.add_expectation(expectation)
    columns = list(dict.fromkeys(rule.column for rule in rules))
    counted = [0] * len(rules)
    unexpected = [0] * len(rules)
    failing: list[list[tuple[int, str]]] = [[] for _ in rules]
    complete = {"result_format": "COMPLETE", "include_unexpected_rows": False}
    for chunk, weights in _distinct_chunks(conn, sql, columns, params or []):
        batch = batch_definition.get_batch(batch_parameters={"dataframe": chunk})
        validation = batch.validate(suite, result_format=complete)
        for i, (rule, result) in enumerate(zip(rules, validation.results, strict=True)):
            details, weight = result.result, weights[rule.column]
            indices = details.get("unexpected_index_list") or []
            # Expectations that skip nulls report them as missing: they count only the non-null rows.
            skips_nulls = details.get("missing_count") is not None
            held = weight[chunk[rule.column].notna().to_numpy()] if skips_nulls else weight
            counted[i] += int(held.sum())
            unexpected[i] += int(weight[indices].sum()) if indices else 0
            failing[i] += _examples(chunk[rule.column], weight, indices)
    outcomes = []
    for i, rule in enumerate(rules):
        share = unexpected[i] / counted[i] if counted[i] else 0.0
        examples = [value for _, value in sorted(failing[i], key=lambda f: -f[0])[:3]]
        shown = f"; e.g. {', '.join(examples)}" if examples else ""
        outcomes.append(
            Outcome(
                rule=rule.rule,
                observed=f"{unexpected[i]:,} of {counted[i]:,} values fail ({share:.2%}){shown}",
                passed=share <= (1 - rule.mostly) + 1e-12,
                engine=f"great_expectations:{rule.expectation}",
            )
        )
    return outcomes


def fact(rule: str, observed: object, passed: bool) -> Outcome:
    """A whole-table rule's outcome, evaluated in DuckDB."""
    return Outcome(rule=rule, observed=str(observed), passed=bool(passed), engine="duckdb")
