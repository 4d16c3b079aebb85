"""Raw layer: the source file as text, with its lineage."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_seg.core.sources import load_raw
from retail_seg.core.warehouse import RAW_TRANSACTIONS, publish
from retail_seg.defs.metadata import table_metadata
from retail_seg.defs.resources import SourceFile


@dg.asset(group_name="raw", kinds={"duckdb"}, code_version="1", pool="warehouse")
def raw_transactions(
    context: dg.AssetExecutionContext, source: SourceFile, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    """Every line of the source export, mapped to canonical column names and kept as text."""
    path = source.resolve()
    with warehouse.get_connection() as conn:
        loaded = load_raw(conn, path, load_id=context.run.run_id)
        publish(conn, RAW_TRANSACTIONS)
        metadata = table_metadata(conn, RAW_TRANSACTIONS)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "source_file": dg.MetadataValue.path(str(path)),
            "source_sha256": loaded.sha256,
            "source_format": loaded.format.name,
        }
    )
