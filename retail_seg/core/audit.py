"""Audit: every run's record and every customer's segment in every run, and how customers moved between runs.

These tables are append-only history (one run's rows are replaced only when that same run is recorded
again), unlike the layer tables, which always hold the latest good run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import duckdb
import pandas as pd

from retail_seg.core.cleaning import rejected_by_rule
from retail_seg.core.tables import (
    AUDIT_RUNS,
    CUSTOMER_FEATURES,
    CUSTOMER_HISTORY,
    CUSTOMER_SEGMENTS,
    CUSTOMER_VALUE,
    CUSTOMERS,
    EDA_SUMMARY,
    K_SELECTION,
    METHOD_COMPARISON,
    MODEL_FEATURES,
    PREPROCESSING_STEPS,
    RAW_LOADS,
    REJECTED_ACROSS_LOADS,
    REJECTED_ROWS,
    SEGMENT_DRIFT,
    SEGMENT_EVENTS,
    SEGMENT_HISTORY,
    SEGMENT_IDENTITY,
    SEGMENT_PROFILES,
    STAGING_TRANSACTIONS,
)
from retail_seg.core.warehouse import column_types, ensure_schemas, exists, row_count, transaction

HIGH_VALUE = "champions"
# The tables a run has published by the time it is recorded, whose row counts the record keeps.
RECORDED_TABLES = (
    RAW_LOADS,
    REJECTED_ACROSS_LOADS,
    STAGING_TRANSACTIONS,
    REJECTED_ROWS,
    CUSTOMERS,
    CUSTOMER_FEATURES,
    CUSTOMER_VALUE,
    EDA_SUMMARY,
    MODEL_FEATURES,
    PREPROCESSING_STEPS,
    K_SELECTION,
    METHOD_COMPARISON,
    CUSTOMER_SEGMENTS,
    SEGMENT_PROFILES,
)

_CREATE = (
    f"""CREATE TABLE IF NOT EXISTS {AUDIT_RUNS} (
        run_id VARCHAR PRIMARY KEY,
        recorded_at TIMESTAMP NOT NULL,
        as_of DATE NOT NULL,
        source_file VARCHAR,
        source_sha256 VARCHAR,
        row_counts JSON,
        rejected_by_rule JSON,
        parameters JSON,
        metrics JSON,
        code_versions JSON
    )""",
    f"""CREATE TABLE IF NOT EXISTS {SEGMENT_HISTORY} (
        run_id VARCHAR NOT NULL,
        as_of DATE NOT NULL,
        customer_id VARCHAR NOT NULL,
        cluster INTEGER NOT NULL,
        segment VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        k INTEGER NOT NULL,
        rfm_segment VARCHAR,
        recency_days INTEGER,
        frequency INTEGER,
        monetary DOUBLE,
        PRIMARY KEY (run_id, customer_id)
    )""",
    # Added with lifetime value: a warehouse recorded before has the columns added, empty for its runs.
    f"ALTER TABLE {SEGMENT_HISTORY} ADD COLUMN IF NOT EXISTS p_alive DOUBLE",
    f"ALTER TABLE {SEGMENT_HISTORY} ADD COLUMN IF NOT EXISTS clv DOUBLE",
    # Added with stable segment ids: runs recorded before have none, and the first run after numbers anew.
    f"ALTER TABLE {SEGMENT_HISTORY} ADD COLUMN IF NOT EXISTS segment_id VARCHAR",
    f"ALTER TABLE {AUDIT_RUNS} ADD COLUMN IF NOT EXISTS drift JSON",
    f"ALTER TABLE {SEGMENT_HISTORY} ADD COLUMN IF NOT EXISTS distance_to_centre DOUBLE",
    f"ALTER TABLE {SEGMENT_HISTORY} ADD COLUMN IF NOT EXISTS distance_to_nearest_other DOUBLE",
    f"""CREATE TABLE IF NOT EXISTS {SEGMENT_EVENTS} (
        run_id VARCHAR NOT NULL, segment_id VARCHAR NOT NULL, event VARCHAR NOT NULL, segment VARCHAR,
        previous_segment VARCHAR, shared_customers BIGINT, share DOUBLE
    )""",
    # "Why was customer X in segment Y on date D": one row per run, with the run's lineage and the
    # features that placed the customer.
    f"""CREATE OR REPLACE VIEW {CUSTOMER_HISTORY} AS
        SELECT h.customer_id, r.recorded_at, h.as_of, h.run_id, r.source_file, r.source_sha256,
               h.segment_id, h.segment, h.label, h.method, h.k, h.cluster, h.rfm_segment,
               h.recency_days, h.frequency, h.monetary, h.p_alive, 1 - h.p_alive AS churn_risk, h.clv,
               h.distance_to_centre, h.distance_to_nearest_other, r.code_versions
        FROM {SEGMENT_HISTORY} h JOIN {AUDIT_RUNS} r USING (run_id)""",
)


@dataclass(frozen=True)
class RunRecord:
    """What an auditor needs to know about one run."""

    run_id: str
    recorded_at: dt.datetime
    source_file: str | None
    source_sha256: str | None
    row_counts: dict[str, int]
    rejected_by_rule: dict[str, int]
    parameters: dict
    metrics: dict
    code_versions: dict[str, str | None]


def ensure_audit_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the audit tables and the customer history view if this warehouse has none yet."""
    ensure_schemas(conn)
    for statement in _CREATE:
        conn.execute(statement)


def run_record(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    recorded_at: dt.datetime,
    parameters: dict,
    code_versions: dict[str, str | None],
) -> RunRecord:
    """What the warehouse says about the run that published it: its source, row counts, rejections and
    the models' metrics, with the run's parameters and code versions."""
    row_counts, rejected, metrics = published_facts(conn)
    source, digest = history_lineage(conn)
    return RunRecord(
        run_id=run_id,
        recorded_at=recorded_at,
        source_file=source,
        source_sha256=digest,
        row_counts=row_counts,
        rejected_by_rule=rejected,
        parameters=parameters,
        metrics=metrics,
        code_versions=code_versions,
    )


def history_lineage(conn: duckdb.DuckDBPyConnection) -> tuple[str | None, str | None]:
    """The files a publication read and one checksum for them: the file's own when there is one, else over
    each file's key and checksum."""
    rows = conn.execute(f"SELECT key, source_file, sha256 FROM {RAW_LOADS} ORDER BY key").fetchall()
    if not rows:
        return None, None
    if len(rows) == 1:
        return rows[0][1], rows[0][2]
    listing = "\n".join(f"{key}:{sha}" for key, _, sha in rows)
    return f"{len(rows)} files: " + ", ".join(source for _, source, _ in rows[:5]), hashlib.sha256(
        listing.encode()
    ).hexdigest()


def record_run(conn: duckdb.DuckDBPyConnection, run: RunRecord) -> int:
    """Write the run and every customer's segment in it, in one transaction; return the customers recorded.

    Segments, labels and features are read from the published marts, so the history holds exactly
    what the run published.
    """
    ensure_audit_tables(conn)
    with transaction(conn):
        conn.execute(f"DELETE FROM {SEGMENT_HISTORY} WHERE run_id = ?", [run.run_id])
        conn.execute(f"DELETE FROM {AUDIT_RUNS} WHERE run_id = ?", [run.run_id])
        as_of = conn.execute(f"SELECT max(as_of) FROM {CUSTOMER_FEATURES}").fetchall()[0][0]
        conn.execute(
            f"INSERT INTO {AUDIT_RUNS} (run_id, recorded_at, as_of, source_file, source_sha256, row_counts, "
            "rejected_by_rule, parameters, metrics, code_versions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                run.recorded_at,
                as_of,
                run.source_file,
                run.source_sha256,
                json.dumps(run.row_counts),
                json.dumps(run.rejected_by_rule),
                json.dumps(run.parameters, default=str),
                json.dumps(run.metrics, default=str),
                json.dumps(run.code_versions),
            ],
        )
        conn.execute(
            f"""
            INSERT INTO {SEGMENT_HISTORY} BY NAME
            SELECT ? AS run_id, f.as_of, s.customer_id, s.segment_id, s.cluster, s.segment, p.label,
                   s.method, s.k, s.rfm_segment, f.recency_days, f.frequency, f.monetary, v.p_alive, v.clv,
                   s.distance_to_centre, s.distance_to_nearest_other
            FROM {CUSTOMER_SEGMENTS} s
            JOIN {CUSTOMER_FEATURES} f USING (customer_id)
            JOIN {SEGMENT_PROFILES} p USING (cluster)
            LEFT JOIN {CUSTOMER_VALUE} v USING (customer_id)
            """,
            [run.run_id],
        )
        conn.execute(
            f"""UPDATE {AUDIT_RUNS} SET drift = (
                    SELECT json_group_array(json_object('check', "check", 'passed', passed, 'words', words))
                    FROM {SEGMENT_DRIFT})
                WHERE run_id = ?""",
            [run.run_id],
        )
        conn.execute(f"DELETE FROM {SEGMENT_EVENTS} WHERE run_id = ?", [run.run_id])
        conn.execute(
            f"INSERT INTO {SEGMENT_EVENTS} BY NAME SELECT ? AS run_id, * FROM {SEGMENT_IDENTITY}",
            [run.run_id],
        )
        recorded = conn.execute(
            f"SELECT count(*) FROM {SEGMENT_HISTORY} WHERE run_id = ?", [run.run_id]
        ).fetchall()[0][0]
    return recorded


def previous_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The run recorded just before `run_id`, if any."""
    rows = conn.execute(
        f"""
        SELECT run_id FROM {AUDIT_RUNS}
        WHERE recorded_at < (SELECT recorded_at FROM {AUDIT_RUNS} WHERE run_id = ?)
        ORDER BY recorded_at DESC LIMIT 1
        """,
        [run_id],
    ).fetchall()
    return rows[0][0] if rows else None


def previous_assignment(conn: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame | None, list[str]]:
    """The last recorded run's segment per customer (customer_id, segment_id, segment, k, method and R/F/M),
    and every segment id any run has given: what this run's segments are matched and compared against.
    None before the first run with segment ids. Reads the audit trail only; creates nothing."""
    if "segment_id" not in dict(column_types(conn, SEGMENT_HISTORY)):
        return None, []
    known = [i for (i,) in conn.execute(f"SELECT DISTINCT segment_id FROM {SEGMENT_HISTORY}").fetchall() if i]
    if exists(conn, SEGMENT_EVENTS):
        known += [i for (i,) in conn.execute(f"SELECT DISTINCT segment_id FROM {SEGMENT_EVENTS}").fetchall()]
    last = conn.execute(f"SELECT run_id FROM {AUDIT_RUNS} ORDER BY recorded_at DESC LIMIT 1").fetchall()
    if not last:
        return None, sorted(set(known))
    previous = conn.execute(
        f"SELECT customer_id, segment_id, segment, k, method, recency_days, frequency, monetary "
        f"FROM {SEGMENT_HISTORY} WHERE run_id = ?",
        [last[0][0]],
    ).df()
    return previous, sorted(set(known))


@dataclass(frozen=True)
class Migration:
    """How customers moved between two runs' segments."""

    previous_run: str | None
    matrix: pd.DataFrame
    fallen: pd.DataFrame
    only_before: int
    only_now: int


def migration_since_previous(conn: duckdb.DuckDBPyConnection, run_id: str) -> Migration:
    """Customers per (previous segment, current segment) since the previous run, and who fell from champions.

    The matrix counts customers present in both runs; customers who appear in only one are counted
    apart (new arrivals, or no purchases left in the window).
    """
    before = previous_run(conn, run_id)
    matrix_columns = ["from_segment_id", "to_segment_id", "from_segment", "to_segment", "customers"]
    fallen_columns = [
        "customer_id",
        "from_segment",
        "to_segment",
        "from_label",
        "to_label",
        "monetary_before",
        "monetary_now",
        "recency_days_now",
    ]
    if before is None:
        return Migration(
            None, pd.DataFrame(columns=matrix_columns), pd.DataFrame(columns=fallen_columns), 0, 0
        )
    pairs = f"""
        SELECT p.customer_id, coalesce(p.segment_id, p.segment) AS from_segment_id,
               c.segment_id AS to_segment_id, p.segment AS from_segment, c.segment AS to_segment,
               p.label AS from_label, c.label AS to_label,
               p.monetary AS monetary_before, c.monetary AS monetary_now, c.recency_days AS recency_days_now
        FROM {SEGMENT_HISTORY} p JOIN {SEGMENT_HISTORY} c USING (customer_id)
        WHERE p.run_id = $before AND c.run_id = $now
    """
    params = {"before": before, "now": run_id}
    matrix = conn.execute(
        "SELECT from_segment_id, to_segment_id, any_value(from_segment) AS from_segment, "
        "any_value(to_segment) AS to_segment, count(*) AS customers "
        f"FROM ({pairs}) GROUP BY ALL ORDER BY ALL",
        params,
    ).df()
    fallen = conn.execute(
        f"SELECT * EXCLUDE (from_segment_id, to_segment_id) FROM ({pairs}) "
        "WHERE from_label = $high AND to_label <> $high ORDER BY monetary_before DESC",
        params | {"high": HIGH_VALUE},
    ).df()
    only_before, only_now = conn.execute(
        f"""
        SELECT
            (SELECT count(*) FROM {SEGMENT_HISTORY} WHERE run_id = $before
               AND customer_id NOT IN (SELECT customer_id FROM {SEGMENT_HISTORY} WHERE run_id = $now)),
            (SELECT count(*) FROM {SEGMENT_HISTORY} WHERE run_id = $now
               AND customer_id NOT IN (SELECT customer_id FROM {SEGMENT_HISTORY} WHERE run_id = $before))
        """,
        params,
    ).fetchall()[0]
    return Migration(before, matrix, fallen, only_before, only_now)


class NoHistoryError(LookupError):
    """The warehouse has no audit history yet."""


def customer_history(conn: duckdb.DuckDBPyConnection, customer_id: str) -> pd.DataFrame:
    """A customer's segment in every recorded run, oldest first, with lineage and features."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [CUSTOMER_HISTORY.schema, CUSTOMER_HISTORY.name],
    ).fetchall()[0][0]
    if not exists:
        raise NoHistoryError("no audit history in this warehouse yet: materialize segment_history first")
    return conn.execute(
        f"SELECT * FROM {CUSTOMER_HISTORY} WHERE customer_id = ? ORDER BY recorded_at", [customer_id]
    ).df()


def published_facts(conn: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], dict[str, int], dict]:
    """Row counts of every table a run publishes before it is recorded, rejected lines per rule, and the
    published model's metrics."""
    counts = {str(table): row_count(conn, table) for table in RECORDED_TABLES}
    rejected = dict(rejected_by_rule(conn).itertuples(index=False, name=None))
    comparison = conn.execute(f"SELECT * EXCLUDE (reason) FROM {METHOD_COMPARISON} ORDER BY method").df()
    metrics = {
        row["method"]: {k: v for k, v in row.items() if k != "method"}
        for row in comparison.to_dict("records")
    }
    return counts, {str(k): int(v) for k, v in rejected.items()}, metrics
