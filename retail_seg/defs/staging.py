"""Staging layer: typed clean lines, rejected lines with their rule, and one row per customer."""

import datetime as dt

import dagster as dg
from pydantic import Field

from retail_seg.core.cleaning import (
    REJECTION_RULES,
    CleaningResult,
    build_customers,
    clean_transactions,
    raw_mapping,
)
from retail_seg.core.quality import staging_gate
from retail_seg.core.tables import CUSTOMERS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import publish
from retail_seg.defs.gates import Gate
from retail_seg.defs.metadata import DATA_ENGINEERING, layer_tags, table_metadata
from retail_seg.defs.resources import SourceFile, Warehouse

STAGING_GATE = Gate(
    "clean_transactions",
    "staging",
    "Invoice lines unique, sales positive, dates plausible, a customer on every line, and not too many "
    "lines rejected.",
    (STAGING_TRANSACTIONS,),
    keep=(REJECTED_ROWS,),
)


class CleaningConfig(dg.Config):
    """How strict staging is."""

    absurd_quantity_factor: float | None = Field(
        default=1000.0,
        description="A line whose quantity exceeds this many times what its product's lines usually carry "
        "(their median) is an entry error, rejected as absurd; a genuine large order is not that far off. "
        "Empty turns the rule off.",
    )
    max_abs_quantity: int | None = Field(
        default=None,
        description="An absolute ceiling on quantities, either sign, for exports that need one; empty: none.",
    )
    earliest_date: str = Field(
        default="1900-01-01",
        description="Lines dated before this (ISO date) are taken for a wrong century (a two-digit year) and "
        "rejected as out of range.",
    )
    run_date: str | None = Field(
        default=None,
        description="Lines dated after this (ISO date) have not happened yet and are rejected. Empty "
        "means today.",
    )
    max_rejected_share: float = Field(
        default=0.75, description="The staging gate fails when more than this share of lines is rejected."
    )

    def run_day(self) -> dt.date:
        return dt.date.fromisoformat(self.run_date) if self.run_date else dt.date.today()


def _staged(key: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=["raw_transactions"],
        description=description,
        group_name="staging",
        kinds={"duckdb"},
        code_version="4",
        owners=DATA_ENGINEERING,
        tags=layer_tags("staging", personal_data="demographics"),
    )


@dg.multi_asset(
    specs=[
        _staged(
            "clean_transactions", "Typed, deduplicated invoice lines with returns flagged and a line total."
        ),
        _staged(
            "rejected_rows",
            "Raw lines that staging refused, with the rule each broke and its original values.",
        ),
    ],
    check_specs=[STAGING_GATE.spec],
)
def staged_transactions(config: CleaningConfig, source: SourceFile, warehouse: Warehouse):
    """Split raw lines into clean and rejected; every raw line lands in exactly one."""
    run_date, earliest = config.run_day(), dt.date.fromisoformat(config.earliest_date)
    with warehouse.get_connection() as conn:
        result = clean_transactions(
            conn,
            run_date=run_date,
            mapping=raw_mapping(conn, source.known_mappings()),
            max_abs_quantity=config.max_abs_quantity,
            absurd_factor=config.absurd_quantity_factor,
            earliest_date=earliest,
        )
        gate = staging_gate(
            conn,
            STAGING_TRANSACTIONS.candidate,
            REJECTED_ROWS.candidate,
            run_date=run_date,
            earliest_date=earliest,
            max_rejected_share=config.max_rejected_share,
        )
        yield from STAGING_GATE.publish(
            conn, gate, also=(REJECTED_ROWS,), quarantine=warehouse.quarantine_folder()
        )
        yield STAGING_GATE.materialized(
            conn,
            gate,
            {
                "rejected_rows": result.rejected_rows,
                "run_date": str(run_date),
                "max_abs_quantity": config.max_abs_quantity,
            },
        )
        yield dg.MaterializeResult(
            asset_key="rejected_rows", metadata={**table_metadata(conn, REJECTED_ROWS), **_by_rule(result)}
        )


def _by_rule(result: CleaningResult) -> dict[str, dg.MetadataValue]:
    """Rejected lines per rule, every rule listed, and what each rule means."""
    counts = {rule.name: result.rejected_by_rule.get(rule.name, 0) for rule in REJECTION_RULES}
    return {
        "rejected_by_rule": dg.MetadataValue.json(counts),
        "rules": dg.MetadataValue.md("\n".join(f"- `{r.name}`: {r.words}" for r in REJECTION_RULES)),
    }


@dg.asset(
    deps=["clean_transactions"],
    group_name="staging",
    kinds={"duckdb"},
    code_version="2",
    owners=DATA_ENGINEERING,
    tags=layer_tags("staging", personal_data="demographics"),
)
def customers(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer: the demographics the source has (age, gender, country) and first/last seen."""
    with warehouse.get_connection() as conn:
        built = build_customers(conn)
        publish(conn, CUSTOMERS)
        metadata = table_metadata(conn, CUSTOMERS)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "customers_with_age": built.with_age,
            "customers_with_gender": built.with_gender,
        }
    )
