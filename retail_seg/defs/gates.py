"""Quality gates as blocking Dagster asset checks, and write–audit–publish around them."""

import dagster as dg
import duckdb
import pandas as pd

from retail_seg.core.expectations import GateResult
from retail_seg.core.warehouse import Table, discard_candidates, publish
from retail_seg.defs.metadata import markdown_table


def gate_spec(asset: str, gate: str, description: str) -> dg.AssetCheckSpec:
    """The blocking check a gated asset reports: when it fails, nothing downstream runs."""
    return dg.AssetCheckSpec(name=f"{gate}_gate", asset=asset, blocking=True, description=description)


def publish_if_passed(conn: duckdb.DuckDBPyConnection, result: GateResult, *tables: Table) -> None:
    """Publish the candidates when the gate passed; otherwise drop them and leave the live tables be."""
    if result.passed:
        publish(conn, *tables)
    else:
        discard_candidates(conn, *tables)


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


def check_result(result: GateResult, asset: str) -> dg.AssetCheckResult:
    """The gate's verdict as an ERROR-severity check result listing every rule and what was observed."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{result.gate}_gate",
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.message(),
        metadata=_outcomes_metadata(result),
    )


def refuse(result: GateResult, asset: str):
    """Report a failed gate and end the step in plain words; the asset is not materialized.

    A passed gate's result travels inside the MaterializeResult instead, so that it is recorded
    against the materialization it approved.
    """
    yield check_result(result, asset)
    raise dg.Failure(description=result.message(), metadata=_outcomes_metadata(result), allow_retries=False)
