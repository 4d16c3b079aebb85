"""Raw layer: the source file as text, with its lineage, behind the raw gate."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from retail_seg.core.expectations import GateResult, Outcome
from retail_seg.core.mappings import SourceFormatError
from retail_seg.core.quality import raw_gate
from retail_seg.core.sources import load_raw
from retail_seg.core.tables import RAW_LOADS, RAW_TRANSACTIONS
from retail_seg.defs.gates import Gate
from retail_seg.defs.metadata import DATA_ENGINEERING, layer_tags
from retail_seg.defs.resources import LandingFolder, SourceFile, Warehouse

RAW_GATE = Gate(
    "raw_transactions",
    "raw",
    "The file has lines and every canonical column, and its dates, quantities, prices and customer ids "
    "mostly parse.",
    (RAW_TRANSACTIONS, RAW_LOADS),
    keep=(RAW_TRANSACTIONS,),
)


class RawConfig(dg.Config):
    """How much of a source may be unusable before the whole file is refused."""

    max_missing_customer_share: float = Field(
        default=0.5,
        description="Most lines may lack a customer id (guest checkouts); beyond this share the export "
        "is suspect and refused.",
    )
    max_unparseable_share: float = Field(
        default=0.05,
        description="Beyond this share of unparseable dates, quantities or prices, a column is wrong, "
        "not a few lines, and the file is refused.",
    )
    source: str | None = Field(
        default=None,
        description="A file to load instead of the source resource's; the landing-folder sensor sets it "
        "per file.",
    )


def _unreadable(source: Path, error: SourceFormatError) -> GateResult:
    outcome = Outcome("the file is readable as a known export format", str(error), False, "duckdb")
    return GateResult("raw", str(source), (outcome,))


@dg.asset(
    group_name="raw",
    kinds={"duckdb"},
    code_version="5",
    owners=DATA_ENGINEERING,
    tags=layer_tags("raw", personal_data="demographics"),
    check_specs=[RAW_GATE.spec],
)
def raw_transactions(
    context: dg.AssetExecutionContext,
    config: RawConfig,
    source: SourceFile,
    landing: LandingFolder,
    warehouse: Warehouse,
):
    """Every line of the source export, mapped to canonical column names and kept as text."""
    path = Path(config.source).expanduser().absolute() if config.source else source.resolve()
    with warehouse.get_connection() as conn:
        try:
            loaded = load_raw(
                conn,
                landing.admit(path),
                load_id=context.run.run_id,
                scratch=warehouse.scratch_folder(),
                follow_links=not landing.holds(path),
                mappings=source.known_mappings(),
                id_key=source.id_key(),
            )
        except SourceFormatError as error:
            yield from RAW_GATE.refuse(conn, _unreadable(path, error))
        gate = raw_gate(
            conn,
            RAW_TRANSACTIONS.candidate,
            loaded.format,
            max_missing_customer_share=config.max_missing_customer_share,
            max_unparseable_share=config.max_unparseable_share,
        )
        yield from RAW_GATE.publish(conn, gate, quarantine=warehouse.quarantine_folder())
        yield RAW_GATE.materialized(
            conn,
            gate,
            {
                "source_file": dg.MetadataValue.path(str(path)),
                "source_sha256": loaded.sha256,
                "source_format": loaded.format.name,
                "source_encoding": loaded.encoding,
            },
        )
