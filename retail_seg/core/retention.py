"""Retention: how many runs keep their per-customer history and their export files, and the audit trail
of what was removed.

A run past the retention of the history keeps its record in `audit.runs` (lineage, counts, metrics,
code versions: nothing about a single customer) and loses its per-customer rows in
`audit.segment_history` and `audit.audience_history`; a run past the retention of the exports loses its
folder. Each removal is a row of `audit.retention`. Both count runs, newest first: with the nightly
schedule, a run is a night.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_seg.core.exports import MANIFEST, Manifest
from retail_seg.core.tables import AUDIENCE_HISTORY, AUDIT_RUNS, RETENTION, SEGMENT_HISTORY
from retail_seg.core.warehouse import ensure_schemas, exists, transaction

# The previous run's history is what stable ids, migration and drift compare with: always kept.
MIN_HISTORY_RUNS = 2


@dataclass(frozen=True)
class Removal:
    """What retention removed of one earlier run."""

    run_id: str
    what: str
    rows: int


def _record(conn: duckdb.DuckDBPyConnection, removals: list[Removal], by_run: str, now: dt.datetime) -> None:
    ensure_schemas(conn)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {RETENTION} (applied_at TIMESTAMP, by_run VARCHAR, run_id VARCHAR, "
        "what VARCHAR, rows BIGINT)"
    )
    if removals:
        conn.executemany(
            f"INSERT INTO {RETENTION} VALUES (?, ?, ?, ?, ?)",
            [(now.replace(tzinfo=None), by_run, r.run_id, r.what, r.rows) for r in removals],
        )


def compact_history(
    conn: duckdb.DuckDBPyConnection, keep_runs: int | None, by_run: str, now: dt.datetime
) -> list[Removal]:
    """Remove the per-customer history of every recorded run but the newest `keep_runs` (None keeps all)."""
    if keep_runs is None:
        return []
    if keep_runs < MIN_HISTORY_RUNS:
        raise ValueError(
            f"history keep_runs must be at least {MIN_HISTORY_RUNS} (the previous run is compared)"
        )
    runs = [
        r for (r,) in conn.execute(f"SELECT run_id FROM {AUDIT_RUNS} ORDER BY recorded_at DESC").fetchall()
    ]
    removals = []
    with transaction(conn):
        for run_id in runs[keep_runs:]:
            for table in (SEGMENT_HISTORY, AUDIENCE_HISTORY):
                if exists(conn, table):
                    (rows,) = conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id]).fetchone()
                    if rows:
                        removals.append(Removal(run_id, f"{table} rows", int(rows)))
        _record(conn, removals, by_run, now)
    return removals


def prune_exports(
    conn: duckdb.DuckDBPyConnection, folder: Path, keep_runs: int | None, by_run: str, now: dt.datetime
) -> list[Removal]:
    """Remove the export folders of every run but the newest `keep_runs` (None keeps all); the run the
    `latest` link names is always kept."""
    if keep_runs is None:
        return []
    if keep_runs < 1:
        raise ValueError(
            "exports keep_runs must be at least 1 (the latest run's exports are the current ones)"
        )
    written = sorted(
        (
            (Manifest.read(m.parent).written_at, m.parent)
            for m in folder.glob(f"*/{MANIFEST}")
            if not m.parent.is_symlink()  # `latest` names one of them: not another run
        ),
        reverse=True,
    )
    latest = (folder / "latest").resolve()
    removals = []
    for _, run_folder in written[keep_runs:]:
        if run_folder.resolve() == latest:
            continue
        files = sum(1 for p in run_folder.rglob("*") if p.is_file())
        shutil.rmtree(run_folder)
        removals.append(Removal(run_folder.name, "exports folder files", files))
    _record(conn, removals, by_run, now)
    return removals
