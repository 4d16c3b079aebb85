"""CRM exports: each segment and each named audience as CSV and Parquet, what changed since the last
run, and a manifest a sync can trust.

A run writes its files into its own folder of the exports folder, which the publication makes visible
with everything else the run built (`core/publication.py`); a sync reads `latest/manifest.json`, then the
files it lists:

    exports/
        latest -> <run id>
        <run id>/manifest.json                   every file below with its rows, bytes and SHA-256
        <run id>/segments/<segment id>.csv       the segment's customers (also .parquet)
        <run id>/audiences/<name>.csv            the audience's customers to contact
        <run id>/audiences/<name>.control.csv    its control group: in the audience, held out
        <run id>/audiences/<name>.changes.csv    who entered or left it since the previous run

Files hold only the configured columns (`customer_id` first, always): no personal data beyond the id
unless the settings name it. A file is never changed in place, only replaced (publications hard-link
the exports of earlier runs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from retail_seg.core.sources import file_sha256
from retail_seg.core.tables import (
    AUDIENCE_HISTORY,
    AUDIENCE_MEMBERS,
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    CUSTOMER_VALUE,
    CUSTOMERS,
    EXPORT_FILES,
    SEGMENT_PROFILES,
)
from retail_seg.core.warehouse import ensure_schemas, exists, publish, transaction

MANIFEST = "manifest.json"
LATEST = "latest"
FORMATS = ("csv", "parquet")
# What a CRM needs to act on a customer, in this order: the default columns of every file.
CRM_COLUMNS = (
    "customer_id",
    "segment_id",
    "segment",
    "recommendation",
    "recency_days",
    "frequency",
    "monetary",
    "churn_risk",
    "p_alive",
    "clv",
    "last_purchase",
)
# Columns a file may also hold when the settings name them; the personal ones only then.
PERSONAL_COLUMNS = ("country", "age", "gender")
MORE_COLUMNS = (
    "label",
    "rfm_segment",
    "avg_order_value",
    "tenure_days",
    "first_purchase",
    "expected_purchases",
    "monetary_rank",
    "clv_rank",
    *PERSONAL_COLUMNS,
)
ALLOWED_COLUMNS = (*CRM_COLUMNS, *MORE_COLUMNS)
# Every customer of the published segmentation, with what an audience's filter may test.
_BASE = "audience_base"
_BASE_SQL = f"""
    CREATE OR REPLACE TEMP VIEW {_BASE} AS
    SELECT s.customer_id, s.segment_id, s.segment, s.label, p.recommendation,
           f.recency_days, f.frequency, f.monetary, f.avg_order_value, f.tenure_days, f.rfm_segment,
           f.first_purchase, f.last_purchase,
           v.churn_risk, v.p_alive, v.expected_purchases, v.clv,
           c.country, c.age, c.gender,
           percent_rank() OVER (ORDER BY f.monetary) AS monetary_rank,
           CASE WHEN v.clv IS NOT NULL THEN percent_rank() OVER (PARTITION BY v.clv IS NULL ORDER BY v.clv)
           END AS clv_rank
    FROM {CUSTOMER_SEGMENTS} s
    JOIN {CUSTOMER_FEATURES} f USING (customer_id)
    LEFT JOIN {CUSTOMER_VALUE} v USING (customer_id)
    LEFT JOIN {SEGMENT_PROFILES} p USING (segment_id)
    LEFT JOIN {CUSTOMERS} c USING (customer_id)
"""
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class ExportError(ValueError):
    """Export settings that cannot be honoured: an unknown column, a bad audience name or filter."""


@dataclass(frozen=True)
class Audience:
    """A named filter over the segmented customers, with the share of them held out as control."""

    name: str
    where: str
    control_share: float = 0.0


DEFAULT_AUDIENCES = (
    Audience("valuable_at_risk", "monetary_rank >= 0.75 AND churn_risk >= 0.5", control_share=0.10),
    Audience("champions", "label = 'champions'", control_share=0.10),
)


@dataclass(frozen=True)
class ExportSettings:
    """Which columns the files may hold, and the audiences to build."""

    columns: tuple[str, ...] = CRM_COLUMNS
    audiences: tuple[Audience, ...] = DEFAULT_AUDIENCES

    def check(self) -> None:
        """Refuse, before anything is written, what the exports could not honour."""
        unknown = [c for c in self.columns if c not in ALLOWED_COLUMNS]
        if unknown:
            raise ExportError(
                f"exports: unknown column(s) {', '.join(unknown)}; "
                f"a file may hold {', '.join(ALLOWED_COLUMNS)}"
            )
        if (
            not self.columns
            or self.columns[0] != "customer_id"
            or len(set(self.columns)) != len(self.columns)
        ):
            raise ExportError("exports: the columns must start with customer_id and name each column once")
        names = [a.name for a in self.audiences]
        for audience in self.audiences:
            if not _NAME.fullmatch(audience.name) or names.count(audience.name) > 1:
                raise ExportError(
                    f"audience {audience.name!r}: a name is unique, lower case letters, digits and _, "
                    "starting with a letter (it names files)"
                )
            if ";" in audience.where or not audience.where.strip():
                raise ExportError(f"audience {audience.name!r}: the filter must be one SQL condition")
            if not 0.0 <= audience.control_share < 1.0:
                raise ExportError(f"audience {audience.name!r}: control_share must be in [0, 1)")


@dataclass(frozen=True)
class ExportedFile:
    """One file of a run's exports, as the manifest lists it."""

    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class AudienceCounts:
    name: str
    where: str
    control_share: float
    target: int
    control: int
    entered: int
    left: int


@dataclass
class Manifest:
    """What a run exported: its files with their checksums, the columns and the audiences."""

    run_id: str
    written_at: str
    previous_run: str | None
    columns: list[str]
    audiences: list[AudienceCounts] = field(default_factory=list)
    files: list[ExportedFile] = field(default_factory=list)

    def write(self, folder: Path) -> Path:
        return _replace_with(folder / MANIFEST, json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        data = json.loads((folder / MANIFEST).read_text())
        return cls(
            **{
                **data,
                "audiences": [AudienceCounts(**a) for a in data["audiences"]],
                "files": [ExportedFile(**f) for f in data["files"]],
            }
        )


def _replace_with(path: Path, content: bytes) -> Path:
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_bytes(content)
    os.replace(staged, path)
    return path


def copy_query(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict, path: Path, fmt: str) -> int:
    """Write a query's rows to `path` as CSV (with a header) or Parquet, by a rename; the rows written."""
    staged = str(path.with_name(f".{path.name}.tmp")).replace("'", "''")
    options = "FORMAT csv, HEADER" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd"
    (rows,) = conn.execute(f"COPY ({sql}) TO '{staged}' ({options})", params).fetchone()
    os.replace(path.with_name(f".{path.name}.tmp"), path)
    return int(rows)


def described(folder: Path, path: Path, rows: int) -> ExportedFile:
    return ExportedFile(str(path.relative_to(folder)), rows, path.stat().st_size, file_sha256(path))


def in_control(audience: str, customer_id: str, share: float) -> bool:
    """The control rule, in Python (what `_HOLDOUT` computes in SQL): the first 32 bits of
    md5(audience:customer id) below `share` of 2^32. The same customer and audience are held out on every
    run, whatever else changes."""
    return int(hashlib.md5(f"{audience}:{customer_id}".encode()).hexdigest()[:8], 16) / 2**32 < share


_HOLDOUT = "(('0x' || substr(md5(? || ':' || customer_id), 1, 8))::UBIGINT / 4294967296.0) < ?"


def _members_sql(settings: ExportSettings) -> tuple[str, list]:
    parts, params = [], []
    for audience in settings.audiences:
        parts.append(
            f"SELECT ? AS audience, customer_id, {_HOLDOUT} AS holdout FROM {_BASE} WHERE ({audience.where})"
        )
        params += [audience.name, audience.name, audience.control_share]
    if not parts:
        return (
            "SELECT NULL::VARCHAR AS audience, NULL::VARCHAR AS customer_id, NULL::BOOLEAN AS holdout "
            "LIMIT 0",
            [],
        )
    return " UNION ALL ".join(parts), params


def _check_filters(conn: duckdb.DuckDBPyConnection, settings: ExportSettings) -> None:
    for audience in settings.audiences:
        try:
            conn.execute(f"SELECT count(*) FROM {_BASE} WHERE ({audience.where})").fetchall()
        except duckdb.Error as error:
            first = str(error).splitlines()[0]
            raise ExportError(
                f"audience {audience.name!r}: its filter {audience.where!r} is not a condition over the "
                f"segmented customers ({first}); it may test {', '.join(ALLOWED_COLUMNS)}"
            ) from None


def export_run(
    conn: duckdb.DuckDBPyConnection, folder: Path, run_id: str, settings: ExportSettings, now: dt.datetime
) -> Manifest:
    """Write this run's exports into `folder/<run_id>`, rebuild the audiences' members and record the run's
    files and members in the audit trail; the manifest.

    The changes are against the audiences as the previous publication holds them. Everything lands in
    the run's own warehouse and folder, visible only once the run publishes.
    """
    settings.check()
    ensure_schemas(conn)
    conn.execute(_BASE_SQL)
    _check_filters(conn, settings)
    previous_run = None
    if exists(conn, AUDIENCE_MEMBERS):
        rows = conn.execute(f"SELECT any_value(run_id) FROM {AUDIENCE_MEMBERS}").fetchall()
        previous_run = rows[0][0] if rows else None
    else:
        conn.execute(
            f"CREATE TABLE {AUDIENCE_MEMBERS} (audience VARCHAR, customer_id VARCHAR, holdout BOOLEAN, "
            "run_id VARCHAR)"
        )
    members, params = _members_sql(settings)
    conn.execute(
        f"CREATE OR REPLACE TABLE {AUDIENCE_MEMBERS.candidate} AS "
        f"SELECT audience, customer_id, holdout, ?::VARCHAR AS run_id FROM ({members})",
        [run_id, *params],  # in the order the placeholders appear
    )

    target = folder / run_id
    shutil.rmtree(target, ignore_errors=True)
    (target / "segments").mkdir(parents=True)
    (target / "audiences").mkdir()
    columns = ", ".join(f"b.{c}" for c in settings.columns)
    manifest = Manifest(run_id, now.isoformat(), previous_run, list(settings.columns))

    def write(sql: str, query_params: list | dict, stem: Path) -> int:
        rows = 0
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            rows = copy_query(conn, sql, query_params, path, fmt)
            manifest.files.append(described(target, path, rows))
        return rows

    segment_ids = [
        s for (s,) in conn.execute(f"SELECT DISTINCT segment_id FROM {_BASE} ORDER BY 1").fetchall()
    ]
    for segment_id in segment_ids:
        write(
            f"SELECT {columns} FROM {_BASE} b WHERE b.segment_id = ? ORDER BY b.customer_id",
            [segment_id],
            target / "segments" / segment_id,
        )
    for audience in settings.audiences:
        chosen = (
            f"SELECT {columns} FROM {_BASE} b JOIN {AUDIENCE_MEMBERS.candidate} m USING (customer_id) "
            "WHERE m.audience = ? AND m.holdout = ? ORDER BY b.customer_id"
        )
        counts = [
            write(chosen, [audience.name, holdout], target / "audiences" / f"{audience.name}{suffix}")
            for holdout, suffix in ((False, ""), (True, ".control"))
        ]
        changes = f"""
            SELECT coalesce(new.customer_id, old.customer_id) AS customer_id,
                   CASE WHEN old.customer_id IS NULL THEN 'entered' ELSE 'left' END AS change,
                   coalesce(new.holdout, old.holdout) AS holdout
            FROM (SELECT * FROM {AUDIENCE_MEMBERS.candidate} WHERE audience = $name) new
            FULL JOIN (SELECT * FROM {AUDIENCE_MEMBERS} WHERE audience = $name) old USING (customer_id)
            WHERE new.customer_id IS NULL OR old.customer_id IS NULL
            ORDER BY change, customer_id
        """
        write(changes, {"name": audience.name}, target / "audiences" / f"{audience.name}.changes")
        entered, left = conn.execute(
            "SELECT count(*) FILTER (change = 'entered'), count(*) FILTER (change = 'left') "
            f"FROM ({changes})",
            {"name": audience.name},
        ).fetchone()
        manifest.audiences.append(
            AudienceCounts(audience.name, audience.where, audience.control_share, *counts, entered, left)
        )
    manifest.write(target)
    point_latest(folder, run_id)
    _record(conn, run_id, folder, manifest)
    return manifest


def point_latest(folder: Path, run_id: str) -> None:
    """Make `folder/latest` name the run's folder, in one rename."""
    staged = folder / f".{LATEST}.tmp"
    staged.unlink(missing_ok=True)
    staged.symlink_to(run_id)
    os.replace(staged, folder / LATEST)


def _record(conn: duckdb.DuckDBPyConnection, run_id: str, folder: Path, manifest: Manifest) -> None:
    """The run's members into the audit trail and its files into audit.exports, with the new members."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {AUDIENCE_HISTORY} "
        "(run_id VARCHAR, audience VARCHAR, customer_id VARCHAR, holdout BOOLEAN)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {EXPORT_FILES} "
        "(run_id VARCHAR, path VARCHAR, rows BIGINT, bytes BIGINT, sha256 VARCHAR)"
    )
    with transaction(conn):
        for table in (AUDIENCE_HISTORY, EXPORT_FILES):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        conn.execute(
            f"INSERT INTO {AUDIENCE_HISTORY} SELECT run_id, audience, customer_id, holdout "
            f"FROM {AUDIENCE_MEMBERS.candidate}"
        )
        conn.executemany(
            f"INSERT INTO {EXPORT_FILES} VALUES (?, ?, ?, ?, ?)",
            [(run_id, f.path, f.rows, f.bytes, f.sha256) for f in manifest.files],
        )
    publish(conn, AUDIENCE_MEMBERS)
