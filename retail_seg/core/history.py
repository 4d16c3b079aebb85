"""The history a publication derives from: every accepted load of the lake, as the staging layer.

`staging.transactions` and `staging.rejected_rows` become views over the accepted loads' Parquet files,
fixed for the publication (the files are immutable, named by load). A line repeated across files (an
invoice in two daily exports) counts once: the copy in the later load is rejected as `duplicate_line`.
`raw.loads` lists the loads the publication reads, which keeps their files from being collected while a
publication reads them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb

from retail_seg.core.cleaning import lines_sharing_a_key_hash_sql
from retail_seg.core.customer_tables import FLAGS, TABLE_ROWS, build_customer_table
from retail_seg.core.features import STORED_INVOICE_NO, invoices_sql
from retail_seg.core.lake import Lake, LoadRecord
from retail_seg.core.mappings import CANONICAL as RAW_COLUMNS
from retail_seg.core.mappings import LINE_COLUMNS
from retail_seg.core.parsing import literal, literal_list
from retail_seg.core.tables import (
    LOAD_EVENTS,
    RAW_LOADS,
    RAW_TRANSACTIONS,
    REJECTED_ACROSS_LOADS,
    REJECTED_ROWS,
    STAGING_INVOICES,
    STAGING_TRANSACTIONS,
)
from retail_seg.core.warehouse import ensure_schemas, exists, transaction

# The clean line as a load writes it (staging's columns), for a history with no load yet.
LINE_SCHEMA = (
    ("invoice_no", "VARCHAR"),
    ("stock_code", "VARCHAR"),
    ("description", "VARCHAR"),
    ("quantity", "BIGINT"),
    ("unit_price", "DECIMAL(18, 4)"),
    ("invoice_date", "TIMESTAMP"),
    ("customer_id", "VARCHAR"),
    ("country", "VARCHAR"),
    ("age", "INTEGER"),
    ("gender", "VARCHAR"),
    ("product_category", "VARCHAR"),
    ("is_return", "BOOLEAN"),
    ("line_total", "DECIMAL(38, 4)"),
    ("load_id", "VARCHAR"),
    ("source_row", "BIGINT"),
)
REJECTED_SCHEMA = (
    ("load_id", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("source_row", "BIGINT"),
    ("rule", "VARCHAR"),
    *((column, "VARCHAR") for column in RAW_COLUMNS),
)
LOADS_SCHEMA = (
    "load_id VARCHAR, key VARCHAR, source_file VARCHAR, sha256 VARCHAR, bytes BIGINT, mapping VARCHAR, "
    "lines BIGINT, clean BIGINT, rejected BIGINT, loaded_at TIMESTAMP, run_id VARCHAR"
)


LOAD_EVENTS_SCHEMA = (
    "run_id VARCHAR, event VARCHAR, key VARCHAR, source_file VARCHAR, sha256 VARCHAR, load_id VARCHAR, "
    "lines BIGINT, detail VARCHAR"
)


@dataclass(frozen=True)
class LoadEvent:
    """One change to the history a publication records: a file loaded, a version superseded, a refusal."""

    event: str
    record: LoadRecord
    detail: str


@dataclass(frozen=True)
class History:
    """What a publication reads: the accepted loads, in the order they were accepted, and what they hold,
    and how it differs from what the previous publication read."""

    loads: tuple[LoadRecord, ...]
    lines: int
    duplicates: int
    events: tuple[LoadEvent, ...] = ()

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e.event == event)

    @property
    def checksum(self) -> str:
        """One checksum for the history: over each file's key and the checksum of its accepted bytes."""
        listing = "\n".join(f"{r.key}:{r.sha256}" for r in sorted(self.loads, key=lambda r: r.key))
        return hashlib.sha256(listing.encode()).hexdigest()


class MixedHistory(ValueError):
    """Accepted loads that cannot make one history."""


class MixedGrains(MixedHistory):
    """A lake holding both customer tables and files of lines: a history is one or the other."""


class MixedCurrencies(MixedHistory):
    """Loads whose amounts are in different currencies: they are never added together."""


def currencies_apart(loads) -> str | None:
    """Why `loads` cannot be summed together: their amounts are in different currencies (loads that name
    none are in whatever the others are); None when they can."""
    named: dict[str, list[str]] = {}
    for record in loads:
        if record.currency:
            named.setdefault(record.currency, []).append(record.key)
    if len(named) < 2:
        return None
    held = "; ".join(f"{code}: {', '.join(sorted(keys))}" for code, keys in sorted(named.items()))
    return (
        f"amounts in different currencies would be added together ({held}); declare the base currency "
        "and the rates to it in the mapping's [currency] (code, rates), or load each currency into a "
        "warehouse of its own (RETAIL_SEG_WAREHOUSE)"
    )


def history_currency(conn: duckdb.DuckDBPyConnection, lake: Lake) -> str:
    """The currency the published history's amounts are in, as its loads recorded it; "" when they name
    none (or a load's record is gone)."""
    if not exists(conn, RAW_LOADS):
        return ""
    found = set()
    for (load_id,) in conn.execute(f"SELECT load_id FROM {RAW_LOADS}").fetchall():
        try:
            found.add(lake.record(load_id).currency)
        except (OSError, ValueError, TypeError):
            return ""
    named = found - {""}
    return named.pop() if len(named) == 1 else ""


def _files(paths: list[str]) -> str:
    return literal_list(paths)


def _empty(schema: tuple[tuple[str, str], ...]) -> str:
    return "SELECT " + ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in schema) + " WHERE false"


def _drop_tables_of_before_the_lake(conn: duckdb.DuckDBPyConnection) -> None:
    """A warehouse from before the lake held the staging layer as tables, which the views replace, and a
    text copy of every raw line, which the loads' files and row numbers replace."""
    for table in (RAW_TRANSACTIONS, STAGING_TRANSACTIONS, REJECTED_ROWS):
        kind = conn.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [table.schema, table.name],
        ).fetchall()
        if kind and kind[0][0] == "BASE TABLE":
            conn.execute(f"DROP TABLE {table}")


def _previous_loads(conn: duckdb.DuckDBPyConnection) -> dict[str, LoadRecord]:
    """The loads the previous publication read (this run's warehouse starts as its copy), by file key."""
    [(has_keys,)] = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "AND column_name = 'key'",
        [RAW_LOADS.schema, RAW_LOADS.name],
    ).fetchall()
    if not has_keys:  # none yet, or a warehouse from before the lake
        return {}
    fields = [field for field in LoadRecord.__dataclass_fields__ if field not in ("encoding", "currency")]
    rows = conn.execute(f"SELECT {', '.join(fields)} FROM {RAW_LOADS}").fetchall()
    records = [LoadRecord(**dict(zip(fields, map(_as_in_manifest, row), strict=True))) for row in rows]
    return {r.key: r for r in records}


def _as_in_manifest(value):
    """A timestamp as the ISO text a load's manifest holds; other values as they are."""
    return value.isoformat(timespec="microseconds") if hasattr(value, "isoformat") else value


def _events(conn: duckdb.DuckDBPyConnection, lake: Lake, loads: tuple[LoadRecord, ...]) -> list[LoadEvent]:
    """What changed since the previous publication: loads new to the history, the loads they superseded,
    and refusals no publication has recorded yet."""
    before = _previous_loads(conn)
    now = {r.key: r for r in loads}
    events = [
        LoadEvent("loaded", r, f"{r.clean:,} clean lines, {r.rejected:,} rejected")
        for r in loads
        if r.key not in before or before[r.key].load_id != r.load_id
    ]
    events += [
        LoadEvent(
            "superseded",
            old,
            f"superseded by a corrected version of {key} (SHA-256 {now[key].sha256[:12]}…): its "
            f"{old.clean:,} lines left the history",
        )
        for key, old in before.items()
        if key in now and now[key].load_id != old.load_id
    ]
    reported = {
        load_id
        for (load_id,) in conn.execute(
            f"SELECT load_id FROM {LOAD_EVENTS} WHERE event = 'refused'"
        ).fetchall()
    }
    events += [LoadEvent("refused", r, why) for r, why in lake.refused() if r.load_id not in reported]
    return events


def _record_events(conn: duckdb.DuckDBPyConnection, run_id: str, events: list[LoadEvent]) -> None:
    if events:
        conn.executemany(
            f"INSERT INTO {LOAD_EVENTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    e.event,
                    e.record.key,
                    e.record.source_file,
                    e.record.sha256,
                    e.record.load_id,
                    e.record.lines,
                    e.detail,
                )
                for e in events
            ],
        )


def _stored(files: list[str], options: str = "") -> str:
    """Lines or invoice sums from their Parquet files, their invoice numbers read as the history reads them
    (`features.STORED_INVOICE_NO`)."""
    return (
        f"(SELECT * REPLACE ({STORED_INVOICE_NO} AS invoice_no) FROM read_parquet({_files(files)}{options}))"
    )


def _lines(lake: Lake, loads: list[LoadRecord]) -> str:
    """The clean lines of `loads`, read from their files."""
    return _stored([str(lake.files(r)[0]) for r in loads], ", union_by_name = true")


def _typical_quantities_sql(quantities: list[str]) -> str:
    """Each product's median quantity over every load, from the counts each load kept: the middle one, or
    the mean of the two middle ones, as DuckDB's median over the lines themselves."""
    return f"""
        WITH counted AS (
            SELECT code, quantity, sum(lines) AS lines
            FROM read_parquet({_files(quantities)}) GROUP BY ALL
        ),
        cumulative AS (
            SELECT code, quantity, sum(lines) OVER (PARTITION BY code ORDER BY quantity) AS upto,
                   sum(lines) OVER (PARTITION BY code) AS n
            FROM counted
        )
        SELECT code, (min(quantity) FILTER (WHERE upto >= (n - 1) // 2 + 1)
                      + min(quantity) FILTER (WHERE upto >= n // 2 + 1)) / 2 AS quantity
        FROM cumulative GROUP BY code
    """


def _absurd(
    conn: duckdb.DuckDBPyConnection, lake: Lake, loads: list[LoadRecord], factor: float | None
) -> None:
    """`_absurd` (load_id, source_row): the clean lines whose quantity is beyond `factor` times the median of
    their product's quantities over every load (the rule a single file applies, taken over all of them).
    Only the lines of loads that carry such a quantity are read: a load's counted quantities say which."""
    conn.execute("CREATE OR REPLACE TEMP TABLE _absurd (load_id VARCHAR, source_row BIGINT)")
    counted = {str(lake.quantities(r)): r for r in loads if lake.quantities(r).exists()}
    if not counted or factor is None:
        return
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _typical AS {_typical_quantities_sql(list(counted))}")
    try:
        carrying = conn.execute(
            f"""SELECT DISTINCT q.filename FROM read_parquet({_files(list(counted))}, filename = true) q
                JOIN _typical t USING (code) WHERE q.quantity > {float(factor)!r} * t.quantity"""
        ).fetchall()
        # Loads that kept no counts (adopted from before the lake) are always read.
        read = [counted[name] for (name,) in carrying] + [
            r for r in loads if str(lake.quantities(r)) not in counted
        ]
        if read:
            conn.execute(
                f"""INSERT INTO _absurd SELECT l.load_id, l.source_row
                    FROM {_lines(lake, read)} l
                    JOIN _typical t ON t.code = upper(trim(l.stock_code))
                    WHERE abs(l.quantity) > {float(factor)!r} * t.quantity"""
            )
    finally:
        conn.execute("DROP TABLE IF EXISTS _typical")


def _reusable(conn: duckdb.DuckDBPyConnection, loads: list[LoadRecord]) -> int:
    """How many of `loads`, from the first, the previous publication read exactly as they are now (same
    loads, same order, same counts), so that its verdicts on their repeated lines still hold: a line is a
    copy of an earlier one whatever later loads bring. 0 when there is nothing to reuse."""
    if not exists(conn, REJECTED_ACROSS_LOADS):
        return 0
    before = sorted(_previous_loads(conn).values(), key=lambda r: (r.loaded_at, r.load_id))

    def same(r: LoadRecord) -> tuple:
        return (r.load_id, r.sha256, r.clean, r.rejected)

    if [same(r) for r in before] != [same(r) for r in loads[: len(before)]]:
        return 0
    return len(before)


def _repeats(
    conn: duckdb.DuckDBPyConnection, lake: Lake, loads: list[LoadRecord], ranks: str, kept: int
) -> None:
    """`_repeats` (load_id, source_row): every copy of a line after the first, in the order loads were
    accepted. The first `kept` loads keep the previous publication's verdicts; the lines of the others are
    compared with every line of the same invoice (a repeated line repeats its invoice), and only lines
    whose key hash repeats are compared value by value."""
    key = ", ".join(LINE_COLUMNS)
    conn.execute("CREATE OR REPLACE TEMP TABLE _repeats (load_id VARCHAR, source_row BIGINT)")
    if kept:
        conn.execute(
            f"INSERT INTO _repeats SELECT load_id, source_row FROM {REJECTED_ACROSS_LOADS} "
            "WHERE rule = 'duplicate_line'"
        )
    new = loads[kept:]
    if not new or (not kept and len(new) == 1):  # a load's own repeats were rejected by its load
        return
    compared = loads
    if kept:  # only old loads holding one of the new loads' invoices can hold a copy of their lines
        compared = [*_holding_invoices_of(conn, lake, loads[:kept], new), *new]
        if len(compared) == 1:
            return
    lines = _lines(lake, compared)
    scope = f"SELECT * FROM {lines}"
    if kept:  # the lines of the new loads' invoices, a missing invoice number matching a missing one
        scope = (
            f"SELECT l.* FROM {lines} l SEMI JOIN (SELECT DISTINCT invoice_no FROM {_lines(lake, new)}) a "
            "ON l.invoice_no IS NOT DISTINCT FROM a.invoice_no"
        )
    conn.execute(
        f"""INSERT INTO _repeats
            WITH scope AS NOT MATERIALIZED ({scope}),
            ranks(load_id, rank, source_file) AS (VALUES {ranks}),
            candidates AS ({lines_sharing_a_key_hash_sql("scope", key)})
            SELECT load_id, source_row FROM (
                SELECT c.load_id, c.source_row,
                       row_number() OVER (PARTITION BY {key} ORDER BY ranks.rank, c.source_row) AS copy
                FROM candidates c JOIN ranks USING (load_id)
            )
            WHERE copy > 1 AND load_id IN ({", ".join(literal(r.load_id) for r in new)})"""
    )


def _holding_invoices_of(
    conn: duckdb.DuckDBPyConnection, lake: Lake, old: list[LoadRecord], new: list[LoadRecord]
) -> list[LoadRecord]:
    """The loads of `old` holding an invoice number that a line of `new` carries (a missing number
    matching a missing one), found from their invoice sums, a tenth of their lines; every load of `old`
    when one of them kept no sums."""
    if not all(lake.invoices(r).exists() for r in old):
        return old
    sums = {str(lake.invoices(r)): r for r in old}
    held = conn.execute(
        f"""SELECT DISTINCT o.filename FROM {_stored(list(sums), ", filename = true")} o
            SEMI JOIN (SELECT DISTINCT invoice_no FROM {_lines(lake, new)}) a
              ON o.invoice_no IS NOT DISTINCT FROM a.invoice_no"""
    ).fetchall()
    found = {sums[path].load_id for (path,) in held}
    return [r for r in old if r.load_id in found]


def _judge_across_loads(
    conn: duckdb.DuckDBPyConnection, lake: Lake, loads: list[LoadRecord], ranks: str, factor: float | None
) -> None:
    """Make `staging.rejected_across_loads`: the clean lines of the loads that the whole history rejects,
    with their rule. A quantity absurd over the whole history is `absurd_quantity`; a copy of an earlier
    load's line is `duplicate_line` (unless absurd too). A history that only adds loads to the previous
    publication's judges only the new loads' lines for repeats, and takes the old ones' verdicts as they
    were when no quantity judged absurd has changed; anything else (a correction, an erasure, another
    factor) is judged whole. Either way the table is what judging the whole history gives."""
    _absurd(conn, lake, loads, factor)
    kept = _reusable(conn, loads)
    if kept:
        kept_ids = ", ".join(literal(r.load_id) for r in loads[:kept])
        before = f"SELECT load_id, source_row FROM {REJECTED_ACROSS_LOADS} WHERE rule = 'absurd_quantity'"
        now = f"SELECT load_id, source_row FROM _absurd WHERE load_id IN ({kept_ids})"
        [(changed,)] = conn.execute(
            f"SELECT count(*) FROM (({now} EXCEPT {before}) UNION ALL ({before} EXCEPT {now}))"
        ).fetchall()
        kept = 0 if changed else kept
    _repeats(conn, lake, loads, ranks, kept)
    conn.execute(
        f"""CREATE OR REPLACE TABLE {REJECTED_ACROSS_LOADS} AS
            WITH ranks(load_id, rank, source_file) AS (VALUES {ranks})
            SELECT load_id, source_row, ranks.source_file, 'absurd_quantity' AS rule
            FROM _absurd JOIN ranks USING (load_id)
            UNION ALL
            SELECT load_id, source_row, ranks.source_file, 'duplicate_line' AS rule
            FROM (SELECT * FROM _repeats ANTI JOIN _absurd USING (load_id, source_row))
            JOIN ranks USING (load_id)"""
    )
    for temporary in ("_absurd", "_repeats"):
        conn.execute(f"DROP TABLE {temporary}")


def _invoices_view(conn: duckdb.DuckDBPyConnection, lake: Lake, loads: list[LoadRecord]) -> None:
    """`staging.invoices`: each load's invoice sums as it kept them, or, for a load some of whose lines the
    whole history rejects (or that kept none), its lines summed again without those."""
    touched = {
        load_id
        for (load_id,) in conn.execute(f"SELECT DISTINCT load_id FROM {REJECTED_ACROSS_LOADS}").fetchall()
    }
    kept = [str(lake.invoices(r)) for r in loads if r.load_id not in touched and lake.invoices(r).exists()]
    summed = [r for r in loads if str(lake.invoices(r)) not in kept]
    parts = [f"SELECT * FROM {_stored(kept)}"] if kept else []
    if summed:
        lines = (
            f"(SELECT l.* FROM {_lines(lake, summed)} l "
            f"ANTI JOIN {REJECTED_ACROSS_LOADS} USING (load_id, source_row))"
        )
        parts.append(invoices_sql(lines))
    conn.execute(f"CREATE OR REPLACE VIEW {STAGING_INVOICES} AS {' UNION ALL BY NAME '.join(parts)}")


def build_history(
    conn: duckdb.DuckDBPyConnection, lake: Lake, run_id: str = "", absurd_factor: float | None = 1000.0
) -> History:
    """Point the staging layer at every load in force, list those loads in `raw.loads`, and record in
    `audit.load_events` what changed since the previous publication (under `run_id`). A quantity beyond
    `absurd_factor` times what its product's lines carry over the whole history is rejected (None: never)."""
    ensure_schemas(conn)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {LOAD_EVENTS} ({LOAD_EVENTS_SCHEMA})")
    loads = tuple(sorted(lake.accepted().values(), key=lambda r: (r.loaded_at, r.load_id)))
    tables = [
        (lake.loads / r.load_id / TABLE_ROWS, lake.loads / r.load_id / FLAGS, i) for i, r in enumerate(loads)
    ]
    tables = [t for t in tables if t[0].exists()]
    if tables and len(tables) < len(loads):
        raise MixedGrains(
            "one history, one grain: the lake holds customer tables ("
            + ", ".join(sorted(r.key for r in loads if (lake.loads / r.load_id / TABLE_ROWS).exists()))
            + ") and files of transaction lines; give the customer tables a warehouse of their own "
            "(RETAIL_SEG_WAREHOUSE)"
        )
    lost = [
        r.key
        for r in loads
        if not lake.files(r)[0].exists() and not (lake.loads / r.load_id / TABLE_ROWS).exists()
    ]
    apart = currencies_apart(loads)
    if apart:
        raise MixedCurrencies(f"one history, one currency: {apart}")
    if lost:
        raise FileNotFoundError(f"the lake has lost the lines of accepted loads: {', '.join(lost)}")
    events = _events(conn, lake, loads)
    rejected = [str(lake.files(r)[1]) for r in loads if lake.files(r)[1].exists()]
    with_lines = [r for r in loads if lake.files(r)[0].exists()]
    ranks = ", ".join(f"({literal(r.load_id)}, {i}, {literal(r.source_file)})" for i, r in enumerate(loads))
    with transaction(conn):
        _drop_tables_of_before_the_lake(conn)
        if with_lines:
            lines = _lines(lake, with_lines)
            _judge_across_loads(conn, lake, with_lines, ranks, absurd_factor)
            _invoices_view(conn, lake, with_lines)
            conn.execute(
                f"CREATE OR REPLACE VIEW {STAGING_TRANSACTIONS} AS SELECT l.* FROM {lines} l "
                f"ANTI JOIN {REJECTED_ACROSS_LOADS} USING (load_id, source_row)"
            )
            as_text = ", ".join(
                f"CAST(l.{c} AS VARCHAR) AS {c}"
                if c in dict(LINE_SCHEMA)
                else f"CAST(NULL AS VARCHAR) AS {c}"
                for c in RAW_COLUMNS
            )
            parts = [
                f"SELECT l.load_id, d.source_file, l.source_row, d.rule, {as_text} "
                f"FROM {lines} l JOIN {REJECTED_ACROSS_LOADS} d USING (load_id, source_row)"
            ]
        else:
            conn.execute(
                f"CREATE OR REPLACE TABLE {REJECTED_ACROSS_LOADS} "
                "(load_id VARCHAR, source_row BIGINT, source_file VARCHAR, rule VARCHAR)"
            )
            conn.execute(f"CREATE OR REPLACE VIEW {STAGING_TRANSACTIONS} AS {_empty(LINE_SCHEMA)}")
            conn.execute(
                f"CREATE OR REPLACE VIEW {STAGING_INVOICES} AS " + invoices_sql(f"({_empty(LINE_SCHEMA)})")
            )
            parts = []
        if rejected:
            parts.insert(0, f"SELECT * FROM read_parquet({_files(rejected)}, union_by_name = true)")
        body = " UNION ALL BY NAME ".join(parts) if parts else _empty(REJECTED_SCHEMA)
        conn.execute(f"CREATE OR REPLACE VIEW {REJECTED_ROWS} AS {body}")
        conn.execute(f"CREATE OR REPLACE TABLE {RAW_LOADS} ({LOADS_SCHEMA})")
        if loads:
            conn.executemany(
                f"INSERT INTO {RAW_LOADS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TIMESTAMP), ?)",
                [
                    (
                        r.load_id,
                        r.key,
                        r.source_file,
                        r.sha256,
                        r.bytes,
                        r.mapping,
                        r.lines,
                        r.clean,
                        r.rejected,
                        r.loaded_at,
                        r.run_id,
                    )
                    for r in loads
                ],
            )
        new = {e.record.load_id for e in events if e.event == "loaded"}
        replaced = build_customer_table(conn, tables, new)
        if replaced:
            latest = max((r for r in loads if r.load_id in new), key=lambda r: (r.loaded_at, r.load_id))
            events.append(
                LoadEvent(
                    "replaced",
                    latest,
                    f"{replaced:,} customers listed by an earlier table now have this table's row",
                )
            )
        _record_events(conn, run_id, events)
    # The history's lines are its loads' clean lines less those the whole history rejects (each a clean
    # line of one load, listed once), counted without reading the lines.
    [(duplicates, rejected_across)] = conn.execute(
        f"SELECT count(*) FILTER (WHERE rule = 'duplicate_line'), count(*) FROM {REJECTED_ACROSS_LOADS}"
    ).fetchall()
    lines = sum(r.clean for r in with_lines) - rejected_across if with_lines else 0
    return History(loads, lines, duplicates, tuple(events))


def adopt_tables(conn: duckdb.DuckDBPyConnection, lake: Lake, run_id: str) -> LoadRecord | None:
    """A warehouse from before the lake holds its staging layer as tables: take them into the lake as one
    load, so its history goes on (the next loads add to it; nothing is reloaded)."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? "
        "AND table_type = 'BASE TABLE'",
        [STAGING_TRANSACTIONS.schema, STAGING_TRANSACTIONS.name],
    ).fetchall()[0][0]
    if not exists or lake.accepted():
        return None
    load_id = f"before-the-lake-{run_id}"
    folder = lake.building(load_id)
    columns = ", ".join(name for name, _ in LINE_SCHEMA if name not in ("load_id",))
    conn.execute(
        f"COPY (SELECT {columns}, {literal(load_id)} AS load_id FROM {STAGING_TRANSACTIONS}) "
        f"TO {literal(str(folder / 'lines.parquet'))} (FORMAT parquet)"
    )
    conn.execute(
        f"COPY (SELECT * REPLACE ({literal(load_id)} AS load_id) FROM {REJECTED_ROWS}) "
        f"TO {literal(str(folder / 'rejected.parquet'))} (FORMAT parquet)"
    )
    [(lines, clean, rejected, digest)] = conn.execute(
        f"""SELECT (SELECT count(*) FROM {STAGING_TRANSACTIONS}) + (SELECT count(*) FROM {REJECTED_ROWS}),
                   (SELECT count(*) FROM {STAGING_TRANSACTIONS}), (SELECT count(*) FROM {REJECTED_ROWS}),
                   (SELECT CAST(sum(hash(t)) AS VARCHAR) FROM {STAGING_TRANSACTIONS} t)"""
    ).fetchall()
    record = LoadRecord(
        load_id=load_id,
        key="before-the-lake",
        source_file="the warehouse's own staging tables",
        sha256=hashlib.sha256(str(digest).encode()).hexdigest(),
        bytes=0,
        mapping="canonical",
        lines=lines,
        clean=clean,
        rejected=rejected,
        loaded_at="1970-01-01T00:00:00",
        run_id=run_id,
    )
    lake.accept(record)
    return record
