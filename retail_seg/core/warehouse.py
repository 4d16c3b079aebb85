"""Warehouse operations: build a table aside, publish it in one transaction, read and count tables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from retail_seg.core.tables import FIGURES, SCHEMAS, Table

if TYPE_CHECKING:  # pandas loads only where a frame is made, not for the SQL
    import pandas as pd


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the layer schemas if this is a new warehouse."""
    for schema in SCHEMAS:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def bound(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The named parameters a statement uses, of those given (DuckDB refuses any it does not use)."""
    return {name: value for name, value in params.items() if re.search(rf"\${name}\b", sql)}


def build_candidate(conn: duckdb.DuckDBPyConnection, table: Table, select_sql: str, params=None) -> None:
    """Build `table`'s candidate from a SELECT, leaving the live table as it is."""
    ensure_schemas(conn)
    drop(conn, table.candidate)
    conn.execute(f"CREATE TABLE {table.candidate} AS {select_sql}", params or [])


def write_candidate(
    conn: duckdb.DuckDBPyConnection, table: Table, select_sql: str, params, path: Path
) -> None:
    """Write a SELECT to `path` as Parquet, and make `table`'s candidate a view over the file: the rows are
    written once, where they are kept, and read back for the gate."""
    ensure_schemas(conn)
    quoted = str(path).replace("'", "''")
    conn.execute(f"COPY ({select_sql}) TO '{quoted}' (FORMAT parquet)", params or [])
    drop(conn, table.candidate)
    conn.execute(f"CREATE VIEW {table.candidate} AS SELECT * FROM read_parquet('{quoted}')")


def build_candidate_from_frame(conn: duckdb.DuckDBPyConnection, table: Table, frame: pd.DataFrame) -> None:
    """Build `table`'s candidate from a DataFrame."""
    ensure_schemas(conn)
    conn.register("_candidate_frame", frame)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {table.candidate} AS SELECT * FROM _candidate_frame")
    finally:
        conn.unregister("_candidate_frame")


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything inside commits together, or is rolled back when anything raises."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _kind(conn: duckdb.DuckDBPyConnection, table: Table) -> str | None:
    """TABLE or VIEW, as the catalog holds `table`; None when there is no such table."""
    rows = conn.execute(
        "SELECT CASE table_type WHEN 'VIEW' THEN 'VIEW' ELSE 'TABLE' END FROM information_schema.tables "
        "WHERE table_schema = ? AND table_name = ?",
        [table.schema, table.name],
    ).fetchall()
    return rows[0][0] if rows else None


def exists(conn: duckdb.DuckDBPyConnection, table: Table) -> bool:
    """Whether the catalog holds `table`, as a table or a view."""
    return _kind(conn, table) is not None


def drop(conn: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Drop `table`, a table or a view, if it exists."""
    if kind := _kind(conn, table):
        conn.execute(f"DROP {kind} {table}")


def publish(conn: duckdb.DuckDBPyConnection, *tables: Table) -> None:
    """Replace each live table by its candidate in one transaction: readers see old or new, never half.
    A candidate may be a view (over what a load read, or a file written once)."""
    with transaction(conn):
        for table in tables:
            drop(conn, table)
            conn.execute(
                f"ALTER {_kind(conn, table.candidate) or 'TABLE'} {table.candidate} RENAME TO {table.name}"
            )


def discard_candidates(conn: duckdb.DuckDBPyConnection, *tables: Table) -> None:
    """Drop candidates that will not be published."""
    for table in tables:
        drop(conn, table.candidate)


def row_count(conn: duckdb.DuckDBPyConnection, table: Table) -> int:
    """Number of rows in a table."""
    return conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def column_types(conn: duckdb.DuckDBPyConnection, table: Table) -> list[tuple[str, str]]:
    """(column, DuckDB type) pairs of a table, in column order."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [table.schema, table.name],
    ).fetchall()
    return [(name, dtype) for name, dtype in rows]


def read_table(
    conn: duckdb.DuckDBPyConnection, table: Table, columns: list[str] | None = None
) -> pd.DataFrame:
    """Read a customer-grain table into pandas (never a transaction-grain one)."""
    selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    return conn.execute(f"SELECT {selected} FROM {table}").df()


def published_tables(conn: duckdb.DuckDBPyConnection) -> list[Table]:
    """Every live table of the layer schemas (candidates excluded)."""
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN (SELECT unnest(?)) AND table_name NOT LIKE '\\_candidate\\_%' ESCAPE '\\' "
        "ORDER BY 1, 2",
        [list(SCHEMAS)],
    ).fetchall()
    return [Table(schema, name) for schema, name in rows]


def table_checksum(conn: duckdb.DuckDBPyConnection, table: Table) -> tuple[int, int]:
    """Row count and an order-independent hash of every row's values: equal means same contents."""
    count, digest = conn.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM {table} t").fetchall()[0]
    return count, int(digest or 0)


def published_checksums(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Checksums of every published table, to show a failed run changed nothing."""
    return {str(table): table_checksum(conn, table) for table in published_tables(conn)}


def replace_figures(
    conn: duckdb.DuckDBPyConnection, asset: str, figures: list[tuple[str, str, bytes]]
) -> None:
    """Replace the figures `asset` drew (name, caption, PNG bytes) in one transaction, keeping their order."""
    ensure_schemas(conn)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {FIGURES} (asset VARCHAR, name VARCHAR, caption VARCHAR, "
        "position INTEGER, png BLOB, PRIMARY KEY (asset, name))"
    )
    with transaction(conn):
        conn.execute(f"DELETE FROM {FIGURES} WHERE asset = ?", [asset])
        if figures:
            conn.executemany(
                f"INSERT INTO {FIGURES} VALUES (?, ?, ?, ?, ?)",
                [(asset, name, caption, i, png) for i, (name, caption, png) in enumerate(figures)],
            )


def read_figures(conn: duckdb.DuckDBPyConnection, assets: list[str]) -> list[tuple[str, str, bytes]]:
    """The figures (name, caption, PNG bytes) the given assets drew, in the order of `assets`."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [FIGURES.schema, FIGURES.name],
    ).fetchall()[0][0]
    if not exists:
        return []
    rows = conn.execute(
        f"SELECT name, caption, png FROM {FIGURES} WHERE list_contains(?, asset) "
        "ORDER BY list_position(?, asset), position",
        [assets, assets],
    ).fetchall()
    return [(name, caption, bytes(png)) for name, caption, png in rows]
