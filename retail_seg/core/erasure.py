"""The right to erasure: one customer removed from every table, lake partition, history and export.

An erasure works like a run: under the warehouse's lock, on a copy of the current publication, made
visible by the same swap (`core/publication.py`), so readers see the customer or not, never half. The
copy is rewritten into a fresh database file, so the customer's rows do not linger in freed blocks;
the lake's partition files and the export files that held the customer are rewritten aside and renamed
into place. What is left behind is one row of `audit.erasures`: when, and how many rows and files,
never who.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from retail_seg.core.exports import MANIFEST, Manifest, described
from retail_seg.core.lake import MANIFEST as LOAD_MANIFEST
from retail_seg.core.lake import Lake
from retail_seg.core.tables import ERASURES, EXPORT_FILES, SCHEMAS
from retail_seg.core.warehouse import ensure_schemas, exists, transaction


@dataclass(frozen=True)
class Erasure:
    """What one erasure removed, as the audit trail keeps it: counts, no customer."""

    erasure_id: str
    erased_at: str
    rows_by_table: dict[str, int]
    lake_files: int
    lake_lines: int
    export_files: int

    @property
    def found(self) -> bool:
        return bool(sum(self.rows_by_table.values()) or self.lake_lines or self.export_files)


class ErasureIncomplete(RuntimeError):
    """The customer is still somewhere after every place was cleared: nothing is published."""


def _customer_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every base table of the layer schemas with a customer_id column (views derive from the lake)."""
    rows = conn.execute(
        "SELECT c.table_schema || '.' || c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.column_name = 'customer_id' AND t.table_type = 'BASE TABLE' "
        "AND c.table_schema IN (SELECT unnest(?)) ORDER BY 1",
        [list(SCHEMAS)],
    ).fetchall()
    return [name for (name,) in rows]


def tables_holding(conn: duckdb.DuckDBPyConnection, customer_id: str) -> list[str]:
    """Every column of every table or view (the history's views read the lake) where a text value is
    exactly `customer_id`: where the customer still is. One scan per table."""
    rows = conn.execute(
        "SELECT table_schema || '.' || table_name, list(column_name ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE data_type = 'VARCHAR' AND table_schema IN (SELECT unnest(?)) "
        "GROUP BY 1 ORDER BY 1",
        [list(SCHEMAS)],
    ).fetchall()
    found = []
    for table, columns in rows:
        counts = ", ".join(f'count(*) FILTER ("{c}" = $id)' for c in columns)
        hits = conn.execute(f"SELECT {counts} FROM {table}", {"id": customer_id}).fetchone()
        found += [f"{table}.{column}" for column, hit in zip(columns, hits, strict=True) if hit]
    return found


def _rewrite_parquet(conn: duckdb.DuckDBPyConnection, path: Path, customer_id: str) -> int:
    """Rewrite a Parquet file without the customer's rows, by a rename; the rows removed."""
    columns = [
        row[0] for row in conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    ]
    if "customer_id" not in columns:
        return 0
    (found,) = conn.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE customer_id = ?", [str(path), customer_id]
    ).fetchone()
    if found:
        staged = path.with_name(f".{path.name}.erasing")
        quoted = str(staged).replace("'", "''")
        conn.execute(
            f"COPY (SELECT * FROM read_parquet(?) WHERE customer_id IS DISTINCT FROM ?) TO '{quoted}' "
            "(FORMAT parquet, COMPRESSION zstd)",
            [str(path), customer_id],
        )
        os.replace(staged, path)
    return int(found)


def _rewrite_csv(path: Path, customer_id: str) -> int:
    """Rewrite an export CSV (customer_id first) without the customer's lines, by a rename."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    kept = [rows[0], *(row for row in rows[1:] if row[0] != customer_id)] if rows else []
    removed = len(rows) - len(kept)
    if removed:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        staged = path.with_name(f".{path.name}.erasing")
        staged.write_text(out.getvalue(), encoding="utf-8")
        os.replace(staged, path)
    return removed


def _erase_from_lake(conn: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str) -> tuple[int, int]:
    """Every load's Parquet, accepted, superseded or refused, without the customer; (files, lines)."""
    files = lines = 0
    for folder in (lake.loads, lake.refusals):
        for path in sorted(folder.glob("*/*.parquet")) if folder.is_dir() else []:
            removed = _rewrite_parquet(conn, path, customer_id)
            if removed:
                files, lines = files + 1, lines + removed
                _recount(path, removed)
    return files, lines


def _recount(path: Path, removed: int) -> None:
    """Keep a load's counts true to its files: the erased lines are no longer among them."""
    manifest = path.parent / LOAD_MANIFEST
    if not manifest.is_file():
        return
    record = json.loads(manifest.read_text())
    field = "clean" if path.name.startswith("lines") else "rejected"
    record[field] = max(0, record[field] - removed)
    record["lines"] = max(0, record["lines"] - removed)
    staged = manifest.with_name(f".{manifest.name}.erasing")
    staged.write_text(json.dumps(record, indent=1))
    os.replace(staged, manifest)


def _erase_from_exports(conn: duckdb.DuckDBPyConnection, exports: Path, customer_id: str) -> int:
    """Every kept run's export files without the customer, their manifests and audit rows made true again."""
    changed = 0
    for manifest_path in sorted(exports.glob(f"*/{MANIFEST}")) if exports.is_dir() else []:
        folder = manifest_path.parent
        manifest = Manifest.read(folder)
        files = []
        for entry in manifest.files:
            path = folder / entry.path
            removed = (
                _rewrite_csv(path, customer_id)
                if path.suffix == ".csv"
                else _rewrite_parquet(conn, path, customer_id)
            )
            if removed:
                changed += 1
                entry = described(folder, path, entry.rows - removed)
                if exists(conn, EXPORT_FILES):
                    conn.execute(
                        f"UPDATE {EXPORT_FILES} SET rows = ?, bytes = ?, sha256 = ? WHERE path = ?",
                        [entry.rows, entry.bytes, entry.sha256, f"{folder.name}/{entry.path}"],
                    )
            files.append(entry)
        manifest.files = files
        manifest.write(folder)
    return changed


def erase_customer(
    conn: duckdb.DuckDBPyConnection, customer_id: str, lake: Lake, exports: Path, now: dt.datetime
) -> Erasure:
    """Remove `customer_id` from the warehouse `conn` is on (a run's copy), the lake and `exports` (the
    run's copy); refuse with ErasureIncomplete if the id is still in any table afterwards."""
    ensure_schemas(conn)
    with transaction(conn):
        rows = {
            table: conn.execute(f"DELETE FROM {table} WHERE customer_id = ?", [customer_id]).fetchone()[0]
            for table in _customer_tables(conn)
        }
    lake_files, lake_lines = _erase_from_lake(conn, lake, customer_id)
    export_files = _erase_from_exports(conn, exports, customer_id)
    left = tables_holding(conn, customer_id)
    if left:
        raise ErasureIncomplete(f"the customer is still in {', '.join(left)}; nothing was published")
    erasure = Erasure(
        erasure_id=str(uuid.uuid4()),
        erased_at=now.isoformat(),
        rows_by_table={t: int(n) for t, n in rows.items() if n},
        lake_files=lake_files,
        lake_lines=lake_lines,
        export_files=export_files,
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {ERASURES} (erasure_id VARCHAR PRIMARY KEY, erased_at TIMESTAMP, "
        "rows_by_table JSON, lake_files INTEGER, lake_lines BIGINT, export_files INTEGER)"
    )
    record = asdict(erasure)
    conn.execute(
        f"INSERT INTO {ERASURES} VALUES (?, ?, ?, ?, ?, ?)",
        [
            record["erasure_id"],
            now.replace(tzinfo=None),
            json.dumps(record["rows_by_table"]),
            lake_files,
            lake_lines,
            export_files,
        ],
    )
    return erasure


def compact(database: Path) -> None:
    """Copy everything `database` holds into a fresh file put in its place, so rows deleted leave nothing
    in freed blocks. No connection may be open on it."""
    fresh = database.with_name(f".{database.name}.fresh")
    fresh.unlink(missing_ok=True)
    with duckdb.connect(str(database)) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone()
        conn.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS erasure_fresh")
        conn.execute(f'COPY FROM DATABASE "{name}" TO erasure_fresh')
        conn.execute("DETACH erasure_fresh")
    os.replace(fresh, database)
    database.with_name(database.name + ".wal").unlink(missing_ok=True)
