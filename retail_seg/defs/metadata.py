"""How assets describe what they wrote: row counts, column schemas, figures, all readable in the UI."""

from __future__ import annotations

import base64

import dagster as dg
import duckdb
import pandas as pd
from matplotlib.figure import Figure

from retail_seg.core.figures import png_bytes
from retail_seg.core.tables import Table
from retail_seg.core.warehouse import column_types, replace_figures, row_count

# Who answers for each layer, shown on every asset and used by `owner:` selections in the UI.
DATA_ENGINEERING = ["team:data-engineering"]
ANALYTICS = ["team:customer-analytics"]


def layer_tags(layer: str, personal_data: str | None = None) -> dict[str, str]:
    """Tags of an asset: its layer and, where its tables hold data about people, which kind."""
    return {"layer": layer, **({"personal_data": personal_data} if personal_data else {})}


def table_name(conn: duckdb.DuckDBPyConnection, table: Table) -> str:
    """The database-qualified name of a table, as Dagster's catalog expects it."""
    [(database,)] = conn.execute("SELECT current_database()").fetchall()
    return f"{database}.{table}"


def table_schema(conn: duckdb.DuckDBPyConnection, table: Table) -> dg.TableSchema:
    """A table's columns with their types and the descriptions written beside the table."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=dtype, description=table.describe(name) or None)
            for name, dtype in column_types(conn, table)
        ]
    )


def table_metadata(conn: duckdb.DuckDBPyConnection, table: Table, *others: Table) -> dict[str, object]:
    """Row count, column schema and name of the asset's table, and the same for the other tables it
    writes, under their own names."""
    metadata: dict[str, object] = {
        "dagster/row_count": row_count(conn, table),
        "dagster/column_schema": table_schema(conn, table),
        "dagster/table_name": table_name(conn, table),
    }
    for other in others:
        metadata[f"{other} rows"] = row_count(conn, other)
        metadata[f"{other} columns"] = dg.MetadataValue.table_schema(table_schema(conn, other))
    return metadata


def record_figures(
    conn: duckdb.DuckDBPyConnection, asset: str, figures: dict[str, tuple[str, Figure]]
) -> dict[str, dg.MetadataValue]:
    """Store an asset's figures (name → caption, figure) for the report, and show each inline in the UI."""
    rendered = [(name, caption, png_bytes(fig)) for name, (caption, fig) in figures.items()]
    replace_figures(conn, asset, rendered)
    return {
        name: dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})")
        for name, _, png in rendered
    }


def markdown_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A small frame as a Markdown table for the UI."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = [
        "| " + " | ".join(str(v).replace("|", "/") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.md("\n".join([header, rule, *rows]))
