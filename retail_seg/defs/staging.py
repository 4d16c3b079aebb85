"""Staging layer: typed clean lines, rejected lines with their rule, and one row per customer."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_seg.core.cleaning import REJECTION_RULES, build_customers, clean_transactions
from retail_seg.core.warehouse import CUSTOMERS, REJECTED_ROWS, STAGING_TRANSACTIONS, publish
from retail_seg.defs.ingest import raw_transactions
from retail_seg.defs.metadata import table_metadata


class CleaningConfig(dg.Config):
    """How strict staging is."""

    max_abs_quantity: int = 10_000
    """Lines whose quantity exceeds this in either direction are rejected as absurd."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "clean_transactions",
            deps=[raw_transactions],
            description="Typed, deduplicated invoice lines with returns flagged and a line total.",
            group_name="staging",
            kinds={"duckdb"},
            code_version="1",
        ),
        dg.AssetSpec(
            "rejected_rows",
            deps=[raw_transactions],
            description="Raw lines that staging refused, with the rule each broke and its original values.",
            group_name="staging",
            kinds={"duckdb"},
            code_version="1",
        ),
    ],
    pool="warehouse",
)
def staged_transactions(config: CleaningConfig, warehouse: DuckDBResource):
    """Split raw lines into clean and rejected; every raw line lands in exactly one."""
    with warehouse.get_connection() as conn:
        result = clean_transactions(conn, max_abs_quantity=config.max_abs_quantity)
        publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
        clean_metadata = table_metadata(conn, STAGING_TRANSACTIONS)
        rejected_metadata = table_metadata(conn, REJECTED_ROWS)
    by_rule = {rule: result.rejected_by_rule.get(rule, 0) for rule in REJECTION_RULES}
    yield dg.MaterializeResult(
        asset_key="clean_transactions",
        metadata={
            **clean_metadata,
            "rejected_rows": result.rejected_rows,
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
    deps=["clean_transactions"], group_name="staging", kinds={"duckdb"}, code_version="1", pool="warehouse"
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
