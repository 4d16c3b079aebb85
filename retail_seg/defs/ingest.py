"""Raw layer: the source file as text, with its lineage, behind the raw gate."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_seg.core.expectations import GateResult, Outcome
from retail_seg.core.quality import raw_gate
from retail_seg.core.sources import SourceFormatError, load_raw
from retail_seg.core.warehouse import RAW_TRANSACTIONS
from retail_seg.defs.gates import check_result, gate_spec, publish_if_passed, refuse
from retail_seg.defs.metadata import table_metadata
from retail_seg.defs.resources import WAREHOUSE_POOL, SourceFile


class RawConfig(dg.Config):
    """How much of a source may be unusable before the whole file is refused."""

    max_missing_customer_share: float = 0.5
    """Most lines may lack a customer id (guest checkouts); beyond this share the export is suspect."""
    max_unparseable_share: float = 0.05
    """Beyond this share of unparseable dates, quantities or prices, a column is wrong, not a few lines."""
    source: str | None = None
    """A file to load instead of the source resource's; the landing-folder sensor sets it per file."""


def _unreadable(source: str, error: SourceFormatError) -> GateResult:
    outcome = Outcome("the file is readable as a known export format", str(error), False, "duckdb")
    return GateResult("raw", source, (outcome,))


@dg.asset(
    group_name="raw",
    kinds={"duckdb"},
    code_version="3",
    pool=WAREHOUSE_POOL,
    check_specs=[
        gate_spec(
            "raw_transactions",
            "raw",
            "The file has lines and every canonical column, and its dates, quantities, prices and customer "
            "ids mostly parse.",
        )
    ],
)
def raw_transactions(
    context: dg.AssetExecutionContext, config: RawConfig, source: SourceFile, warehouse: DuckDBResource
):
    """Every line of the source export, mapped to canonical column names and kept as text."""
    path = Path(config.source).expanduser().resolve() if config.source else source.resolve()
    with warehouse.get_connection() as conn:
        try:
            loaded = load_raw(conn, path, load_id=context.run.run_id)
        except SourceFormatError as error:
            gate = _unreadable(str(path), error)
        else:
            gate = raw_gate(
                conn,
                RAW_TRANSACTIONS.candidate,
                max_missing_customer_share=config.max_missing_customer_share,
                max_unparseable_share=config.max_unparseable_share,
            )
        publish_if_passed(conn, gate, RAW_TRANSACTIONS)
        metadata = table_metadata(conn, RAW_TRANSACTIONS) if gate.passed else {}
    if not gate.passed:
        yield from refuse(gate, "raw_transactions")
    yield dg.MaterializeResult(
        check_results=[check_result(gate, "raw_transactions")],
        metadata={
            **metadata,
            "source_file": dg.MetadataValue.path(str(path)),
            "source_sha256": loaded.sha256,
            "source_format": loaded.format.name,
            "source_encoding": loaded.encoding,
        },
    )
