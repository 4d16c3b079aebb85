"""Warehouse layout: schema and table names, and the one way a table is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:  # pandas loads only where a frame is made, not for the SQL
    import pandas as pd


@dataclass(frozen=True)
class Table:
    """A warehouse table, named by constant so that SQL never takes a table name from user input."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def candidate(self) -> Table:
        """Where a new version is built before it replaces the live table."""
        return Table(self.schema, f"_candidate_{self.name}")

    @property
    def live(self) -> Table:
        """The published table a candidate will replace (itself, for a live table)."""
        return Table(self.schema, self.name.removeprefix("_candidate_"))


RAW_TRANSACTIONS = Table("raw", "transactions")
STAGING_TRANSACTIONS = Table("staging", "transactions")
REJECTED_ROWS = Table("staging", "rejected_rows")
CUSTOMERS = Table("staging", "customers")
EDA_SUMMARY = Table("marts", "eda_summary")
CUSTOMER_FEATURES = Table("marts", "customer_features")
MODEL_FEATURES = Table("marts", "model_features")
PREPROCESSING_STEPS = Table("marts", "preprocessing_steps")
K_SELECTION = Table("marts", "k_selection")
METHOD_COMPARISON = Table("marts", "method_comparison")
CUSTOMER_SEGMENTS = Table("marts", "customer_segments")
SEGMENT_PROFILES = Table("marts", "segment_profiles")
SEGMENT_MIGRATION = Table("marts", "segment_migration")
FALLEN_FROM_HIGH_VALUE = Table("marts", "fallen_from_high_value")

SCHEMAS = ("raw", "staging", "marts", "audit")


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the layer schemas if this is a new warehouse."""
    for schema in SCHEMAS:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def build_candidate(conn: duckdb.DuckDBPyConnection, table: Table, select_sql: str, params=None) -> None:
    """Build `table`'s candidate from a SELECT, leaving the live table as it is."""
    ensure_schemas(conn)
    conn.execute(f"CREATE OR REPLACE TABLE {table.candidate} AS {select_sql}", params or [])


def build_candidate_from_frame(conn: duckdb.DuckDBPyConnection, table: Table, frame: pd.DataFrame) -> None:
    """Build `table`'s candidate from a DataFrame."""
    ensure_schemas(conn)
    conn.register("_candidate_frame", frame)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {table.candidate} AS SELECT * FROM _candidate_frame")
    finally:
        conn.unregister("_candidate_frame")


def publish(conn: duckdb.DuckDBPyConnection, *tables: Table) -> None:
    """Replace each live table by its candidate in one transaction: readers see old or new, never half."""
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"ALTER TABLE {table.candidate} RENAME TO {table.name}")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


def discard_candidates(conn: duckdb.DuckDBPyConnection, *tables: Table) -> None:
    """Drop candidates that will not be published."""
    for table in tables:
        conn.execute(f"DROP TABLE IF EXISTS {table.candidate}")


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
