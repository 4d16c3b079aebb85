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
import json
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from retail_seg.core.customer_tables import TABLE_ROWS
from retail_seg.core.exports import MANIFEST, AudienceCounts, Manifest, described
from retail_seg.core.lake import LINES, REJECTED, Lake
from retail_seg.core.lake import MANIFEST as LOAD_MANIFEST
from retail_seg.core.parsing import customer_key_sql
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


# A customer id as every table keys it: a rejected line keeps the id as its file wrote it ("17850.0",
# " 17850"), a clean one the key (`parsing.customer_key_sql`); both are the same customer.
_KEY = customer_key_sql("CAST(customer_id AS VARCHAR)")


def _customer_tables(conn: duckdb.DuckDBPyConnection, kinds: tuple[str, ...] = ("BASE TABLE",)) -> list[str]:
    """Every table (or view) of the layer schemas with a customer_id column."""
    rows = conn.execute(
        "SELECT c.table_schema || '.' || c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.column_name = 'customer_id' AND list_contains(?, t.table_type) "
        "AND c.table_schema IN (SELECT unnest(?)) ORDER BY 1",
        [list(kinds), list(SCHEMAS)],
    ).fetchall()
    return [name for (name,) in rows]


def tables_holding(conn: duckdb.DuckDBPyConnection, customer_id: str, views: bool = True) -> list[str]:
    """Every table (and view: the history's read the lake) whose customer_id is the customer, in any of
    the spellings a file may give it. Only customer keys are compared: an id that is also some product's
    code is not the customer."""
    kinds = ("BASE TABLE", "VIEW") if views else ("BASE TABLE",)
    return [
        table
        for table in _customer_tables(conn, kinds)
        if conn.execute(f"SELECT count(*) FROM {table} WHERE {_KEY} = ?", [customer_id]).fetchone()[0]
    ]


def _parquet_count(conn: duckdb.DuckDBPyConnection, path: Path, customer_id: str) -> int:
    columns = [
        row[0] for row in conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    ]
    if "customer_id" not in columns:
        return 0
    sql = f"SELECT count(*) FROM read_parquet(?) WHERE {_KEY} = ?"
    return int(conn.execute(sql, [str(path), customer_id]).fetchone()[0])


def _parquet_without(conn: duckdb.DuckDBPyConnection, path: Path, customer_id: str, staged: Path) -> int:
    """Write `path` without the customer's rows to `staged`; the rows left out (0: nothing written)."""
    found = _parquet_count(conn, path, customer_id)
    if found:
        quoted = str(staged).replace("'", "''")
        conn.execute(
            f"COPY (SELECT * FROM read_parquet(?) WHERE {_KEY} IS DISTINCT FROM ?) TO '{quoted}' "
            "(FORMAT parquet, COMPRESSION zstd)",
            [str(path), customer_id],
        )
    return found


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:  # quoted newlines stay as they are
        return list(csv.reader(handle))


def _csv_holding(path: Path, customer_id: str) -> int:
    return sum(1 for row in _csv_rows(path)[1:] if row and row[0] == customer_id)


def _rewrite_csv(path: Path, customer_id: str) -> int:
    """Rewrite an export CSV (customer_id first) without the customer's lines, by a rename."""
    rows = _csv_rows(path)
    kept = [rows[0], *(row for row in rows[1:] if not row or row[0] != customer_id)] if rows else []
    removed = len(rows) - len(kept)
    if removed:
        staged = path.with_name(f".{path.name}.erasing")
        with staged.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(kept)
        os.replace(staged, path)
    return removed


@dataclass(frozen=True)
class _Staged:
    """A lake file rewritten aside, to be renamed into place once the whole erasure holds."""

    path: Path
    staged: Path
    removed: int


def _lake_files(lake: Lake) -> list[Path]:
    """Every Parquet file of every load: accepted, superseded, refused, and their raw lines."""
    return [
        p
        for folder in (lake.loads, lake.refusals)
        if folder.is_dir()
        for p in sorted(folder.glob("*/*.parquet"))
    ]


def _stage_lake(conn: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str) -> list[_Staged]:
    staged = []
    for path in _lake_files(lake):
        aside = path.with_name(f".{path.name}.erasing")
        removed = _parquet_without(conn, path, customer_id, aside)
        if removed:
            staged.append(_Staged(path, aside, removed))
    return staged


def _commit_lake(staged: list[_Staged]) -> None:
    """Rename the rewritten lake files into place (flushed first), and keep each load's counts true."""
    for entry in staged:
        with entry.staged.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(entry.staged, entry.path)
        _recount(entry.path, entry.removed)


def _recount(path: Path, removed: int) -> None:
    """Keep a load's counts true to its files: the erased lines are no longer among them."""
    manifest = path.parent / LOAD_MANIFEST
    field = {LINES: "clean", TABLE_ROWS: "clean", REJECTED: "rejected"}.get(path.name)
    if field is None or not manifest.is_file():
        return
    record = json.loads(manifest.read_text())
    record[field] = max(0, record[field] - removed)
    record["lines"] = max(0, record["lines"] - removed)
    staged = manifest.with_name(f".{manifest.name}.erasing")
    staged.write_text(json.dumps(record, indent=1))
    os.replace(staged, manifest)


def _run_folders(exports: Path) -> list[Path]:
    """Each kept run's export folder (not the `latest` link to one of them)."""
    if not exports.is_dir():
        return []
    return sorted(m.parent for m in exports.glob(f"*/{MANIFEST}") if not m.parent.is_symlink())


def _export_files_holding(conn: duckdb.DuckDBPyConnection, exports: Path, customer_id: str) -> list[str]:
    found = []
    for folder in _run_folders(exports):
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".csv", ".parquet")):
            held = (
                _csv_holding(path, customer_id)
                if path.suffix == ".csv"
                else _parquet_count(conn, path, customer_id)
            )
            if held:
                found.append(str(path.relative_to(exports)))
    return found


def _erase_from_exports(conn: duckdb.DuckDBPyConnection, exports: Path, customer_id: str) -> int:
    """Every kept run's export files without the customer; their manifests (files and audience counts)
    and audit rows made true again."""
    changed = 0
    for folder in _run_folders(exports):
        manifest = Manifest.read(folder)
        files = []
        for entry in manifest.files:
            path = folder / entry.path
            if path.suffix == ".csv":
                removed = _rewrite_csv(path, customer_id)
            else:
                aside = path.with_name(f".{path.name}.erasing")
                removed = _parquet_without(conn, path, customer_id, aside)
                if removed:
                    os.replace(aside, path)
            if removed:
                changed += 1
                entry = described(folder, path, entry.rows - removed)
                if exists(conn, EXPORT_FILES):
                    conn.execute(
                        f"UPDATE {EXPORT_FILES} SET rows = ?, bytes = ?, sha256 = ? "
                        "WHERE run_id = ? AND path = ?",
                        [entry.rows, entry.bytes, entry.sha256, folder.name, entry.path],
                    )
            files.append(entry)
        manifest.files = files
        manifest.audiences = [_recounted(conn, folder, manifest, a) for a in manifest.audiences]
        manifest.write(folder)
    return changed


def _recounted(conn: duckdb.DuckDBPyConnection, folder: Path, manifest: Manifest, audience: AudienceCounts):
    """An audience's counts as its files now hold them."""
    rows = {f.path: f.rows for f in manifest.files}
    changes = folder / "audiences" / f"{audience.name}.changes.parquet"
    entered, left = (audience.entered, audience.left)
    if changes.exists():
        entered, left = conn.execute(
            "SELECT count(*) FILTER (change = 'entered'), count(*) FILTER (change = 'left') "
            "FROM read_parquet(?)",
            [str(changes)],
        ).fetchone()
    return replace(
        audience,
        target=rows.get(f"audiences/{audience.name}.csv", audience.target),
        control=rows.get(f"audiences/{audience.name}.control.csv", audience.control),
        entered=int(entered),
        left=int(left),
    )


def locate(conn: duckdb.DuckDBPyConnection, customer_id: str, lake: Lake, exports: Path) -> list[str]:
    """Every place the customer is: tables and views, lake files (refused loads too), export files."""
    return [
        *tables_holding(conn, customer_id),
        *(str(p) for p in _lake_files(lake) if _parquet_count(conn, p, customer_id)),
        *_export_files_holding(conn, exports, customer_id),
    ]


def erase_customer(
    conn: duckdb.DuckDBPyConnection, customer_id: str, lake: Lake, exports: Path, now: dt.datetime
) -> Erasure:
    """Remove `customer_id` from the warehouse `conn` is on (a run's copy), the lake and `exports` (the
    run's copy). The lake's files are rewritten aside and renamed in only once nothing holds the
    customer any more; otherwise ErasureIncomplete, and the lake is as it was."""
    ensure_schemas(conn)
    with transaction(conn):
        rows = {
            table: conn.execute(f"DELETE FROM {table} WHERE {_KEY} = ?", [customer_id]).fetchone()[0]
            for table in _customer_tables(conn)
        }
    staged = _stage_lake(conn, lake, customer_id)
    try:
        export_files = _erase_from_exports(conn, exports, customer_id)
        left = [
            *tables_holding(conn, customer_id, views=False),
            *(str(s.staged) for s in staged if _parquet_count(conn, s.staged, customer_id)),
            *_export_files_holding(conn, exports, customer_id),
        ]
        if left:
            raise ErasureIncomplete(f"the customer is still in {', '.join(left)}; nothing was published")
    except BaseException:
        for entry in staged:
            entry.staged.unlink(missing_ok=True)
        raise
    _commit_lake(staged)
    erasure = Erasure(
        erasure_id=str(uuid.uuid4()),
        erased_at=now.isoformat(),
        rows_by_table={t: int(n) for t, n in rows.items() if n},
        lake_files=len(staged),
        lake_lines=sum(s.removed for s in staged),
        export_files=export_files,
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {ERASURES} (erasure_id VARCHAR PRIMARY KEY, erased_at TIMESTAMP, "
        "rows_by_table JSON, lake_files INTEGER, lake_lines BIGINT, export_files INTEGER)"
    )
    conn.execute(
        f"INSERT INTO {ERASURES} VALUES (?, ?, ?, ?, ?, ?)",
        [
            erasure.erasure_id,
            now.replace(tzinfo=None),
            json.dumps(erasure.rows_by_table),
            erasure.lake_files,
            erasure.lake_lines,
            erasure.export_files,
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
