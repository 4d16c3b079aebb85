"""Quality gates as blocking Dagster asset checks, and write–audit–publish around them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dagster as dg
import duckdb
import pandas as pd

from retail_seg.core.expectations import GateResult
from retail_seg.core.tables import Table
from retail_seg.core.warehouse import discard_candidates, publish
from retail_seg.defs.metadata import markdown_table, table_metadata


@dataclass(frozen=True)
class Gate:
    """The blocking check that guards one asset: when it fails, the asset's table keeps the last good
    run's contents and nothing downstream runs."""

    asset: str
    name: str
    description: str
    tables: tuple[Table, ...]
    """The tables the asset writes; the first is the one its metadata describes first."""

    @property
    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            name=f"{self.name}_gate", asset=self.asset, blocking=True, description=self.description
        )

    def check_result(self, result: GateResult) -> dg.AssetCheckResult:
        """The verdict as an ERROR-severity check result listing every rule and what was observed."""
        return dg.AssetCheckResult(
            asset_key=self.asset,
            check_name=f"{self.name}_gate",
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=result.message(),
            metadata=_outcomes_metadata(result),
        )

    def publish(
        self,
        conn: duckdb.DuckDBPyConnection,
        result: GateResult,
        also: Sequence[Table] = (),
    ) -> Iterator[dg.AssetCheckResult]:
        """Publish the candidates of the asset's tables, and of `also` (the same step's other assets'
        tables), when the gate passed; otherwise refuse. Code after this call runs only for a passed gate."""
        if not result.passed:
            yield from self.refuse(conn, result, also)
        publish(conn, *self.tables, *also)

    def materialized(
        self, conn: duckdb.DuckDBPyConnection, result: GateResult, metadata: dict[str, object] | None = None
    ) -> dg.MaterializeResult:
        """The asset's materialization: the passed check, its tables described, and `metadata`."""
        return dg.MaterializeResult(
            asset_key=self.asset,
            check_results=[self.check_result(result)],
            metadata={**table_metadata(conn, *self.tables), **(metadata or {})},
        )

    def refuse(
        self,
        conn: duckdb.DuckDBPyConnection,
        result: GateResult,
        also: Sequence[Table] = (),
    ) -> Iterator[dg.AssetCheckResult]:
        """Drop the candidates, record the failed check, and end the step with the failures in words."""
        discard_candidates(conn, *self.tables, *also)
        yield self.check_result(result)
        raise dg.Failure(
            description=result.message(), metadata=_outcomes_metadata(result), allow_retries=False
        )


def _outcomes_metadata(result: GateResult) -> dict[str, dg.MetadataValue]:
    rows = [
        {"rule": o.rule, "observed": o.observed, "result": "pass" if o.passed else "FAIL", "engine": o.engine}
        for o in result.outcomes
    ]
    # One entry per rule, so the checks tab reads as a list without opening anything; then the table.
    per_rule = {
        f"{'pass' if o.passed else 'FAIL'}: {o.rule}": dg.MetadataValue.text(o.observed)
        for o in result.outcomes
    }
    return {
        **per_rule,
        "expectations": markdown_table(pd.DataFrame(rows, columns=["rule", "observed", "result", "engine"])),
        "failed": len(result.failures),
        "evaluated": len(result.outcomes),
        "table": result.table,
    }
