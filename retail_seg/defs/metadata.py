"""How assets describe what they wrote: row counts, column schema, figures, all readable in the UI."""

import base64
import io
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from matplotlib.figure import Figure

from retail_seg.core.warehouse import Table, column_types, row_count


def table_metadata(conn: duckdb.DuckDBPyConnection, table: Table) -> dict[str, object]:
    """Row count, column schema and table name of a published table."""
    columns = [dg.TableColumn(name=name, type=dtype) for name, dtype in column_types(conn, table)]
    return {
        "dagster/row_count": row_count(conn, table),
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "dagster/table_name": str(table),
    }


def save_figure(fig: Figure, folder: Path, name: str) -> tuple[Path, dg.MetadataValue]:
    """Save a figure as PNG and return its path and an inline image for the asset's metadata."""
    path = folder / f"{name}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    png = buffer.getvalue()
    path.write_bytes(png)
    encoded = base64.b64encode(png).decode("ascii")
    return path, dg.MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})")


def markdown_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A small frame as a Markdown table for the UI."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = [
        "| " + " | ".join(str(v).replace("|", "/") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.md("\n".join([header, rule, *rows]))
