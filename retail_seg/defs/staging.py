"""Staging layer: typed clean lines, rejected lines with their rule, and one row per customer."""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_seg.core.cleaning import REJECTION_RULES, build_customers, clean_transactions
from retail_seg.core.quality import staging_gate
from retail_seg.core.warehouse import CUSTOMERS, REJECTED_ROWS, STAGING_TRANSACTIONS, publish
from retail_seg.defs.gates import check_result, gate_spec, publish_if_passed, refuse
from retail_seg.defs.ingest import raw_transactions
from retail_seg.defs.metadata import table_metadata
from retail_seg.defs.resources import WAREHOUSE_POOL


class CleaningConfig(dg.Config):
    """How strict staging is."""

    max_abs_quantity: int = 10_000
    """Lines whose quantity exceeds this in either direction are rejected as absurd."""
    earliest_date: str = "2000-01-01"
    """Lines dated before this (ISO date) are rejected as out of range."""
    run_date: str | None = None
    """Lines dated after this (ISO date) have not happened yet and are rejected. Empty means today."""
    max_rejected_share: float = 0.75
    """The staging gate fails when more than this share of lines is rejected."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "clean_transactions",
            deps=[raw_transactions],
            description="Typed, deduplicated invoice lines with returns flagged and a line total.",
            group_name="staging",
            kinds={"duckdb"},
            code_version="3",
        ),
        dg.AssetSpec(
            "rejected_rows",
            deps=[raw_transactions],
            description="Raw lines that staging refused, with the rule each broke and its original values.",
            group_name="staging",
            kinds={"duckdb"},
            code_version="3",
        ),
    ],
    check_specs=[
        gate_spec(
            "clean_transactions",
            "staging",
            "Invoice lines unique, sales positive, dates plausible, a customer on every line, and not too "
            "many lines rejected.",
        )
    ],
    pool=WAREHOUSE_POOL,
)
def staged_transactions(config: CleaningConfig, warehouse: DuckDBResource):
    """Split raw lines into clean and rejected; every raw line lands in exactly one."""
    run_date = dt.date.fromisoformat(config.run_date) if config.run_date else dt.date.today()
    earliest = dt.date.fromisoformat(config.earliest_date)
    with warehouse.get_connection() as conn:
        result = clean_transactions(
            conn, run_date=run_date, max_abs_quantity=config.max_abs_quantity, earliest_date=earliest
        )
        gate = staging_gate(
            conn,
            STAGING_TRANSACTIONS.candidate,
            REJECTED_ROWS.candidate,
            run_date=run_date,
            earliest_date=earliest,
            max_rejected_share=config.max_rejected_share,
        )
        publish_if_passed(conn, gate, STAGING_TRANSACTIONS, REJECTED_ROWS)
        clean_metadata = table_metadata(conn, STAGING_TRANSACTIONS) if gate.passed else {}
        rejected_metadata = table_metadata(conn, REJECTED_ROWS) if gate.passed else {}
    if not gate.passed:
        yield from refuse(gate, "clean_transactions")
    by_rule = {rule: result.rejected_by_rule.get(rule, 0) for rule in REJECTION_RULES}
    yield dg.MaterializeResult(
        asset_key="clean_transactions",
        check_results=[check_result(gate, "clean_transactions")],
        metadata={
            **clean_metadata,
            "rejected_rows": result.rejected_rows,
            "run_date": str(run_date),
            "max_abs_quantity": config.max_abs_quantity,
        },
    )
    yield dg.MaterializeResult(
        asset_key="rejected_rows",
        metadata={
            **rejected_metadata,
            "rejected_by_rule": dg.MetadataValue.json(by_rule),
            "rules": dg.MetadataValue.md(
                "\n".join(f"- `{r}`: {text}" for r, text in REJECTION_RULES.items())
            ),
        },
    )


@dg.asset(
    deps=["clean_transactions"], group_name="staging", kinds={"duckdb"}, code_version="2", pool=WAREHOUSE_POOL
)
def customers(warehouse: DuckDBResource) -> dg.MaterializeResult:
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
