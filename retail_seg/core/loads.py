"""A load: one file taken into the history, through the raw and staging gates, in a DuckDB of its own.

The load reads its file (from a snapshot hashed while copied), types and judges every line by the
file's mapping, and writes the clean and the rejected lines as Parquet into its folder of the lake. It
never opens the warehouse, so loads of different files run side by side on any worker; the lake's
pointer for the file moves to it only when both gates passed.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from retail_seg.core.cleaning import CleaningResult, clean_transactions
from retail_seg.core.customer_tables import TABLE_ROWS, load_customer_table, recognise
from retail_seg.core.expectations import GateResult, Outcome
from retail_seg.core.features import invoices_sql
from retail_seg.core.history import currencies_apart
from retail_seg.core.lake import INVOICES, LINES, QUANTITIES, REJECTED, Lake, LoadRecord, file_key
from retail_seg.core.mappings import CustomerMapping, Mapping, SourceFormatError
from retail_seg.core.parsing import literal
from retail_seg.core.publication import pause_point
from retail_seg.core.quality import raw_gate, staging_gate
from retail_seg.core.sources import NOT_FOUND, SNAPSHOTS, LoadedSource, file_sha256, load_raw, snapshot
from retail_seg.core.tables import RAW_LOADS, RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import publish, row_count


@dataclass(frozen=True)
class LoadRules:
    """How much a load may get wrong before it is refused, and what its lines must be."""

    run_date: dt.date
    earliest_date: dt.date = dt.date(1900, 1, 1)
    max_abs_quantity: int | None = None
    max_missing_customer_share: float = 0.5
    max_unparseable_share: float = 0.05
    max_rejected_share: float = 0.75


@dataclass(frozen=True)
class LoadOutcome:
    """What a load did: its record, each gate's verdict, and the load it superseded when accepted."""

    record: LoadRecord
    raw_gate: GateResult
    staging_gate: GateResult | None = None
    cleaning: CleaningResult | None = None
    superseded: LoadRecord | None = None
    refused_at: str | None = None
    kept: Path | None = None

    @property
    def accepted(self) -> bool:
        return self.refused_at is None


@dataclass(frozen=True)
class Pending:
    """What of a source the history does not hold as it is now."""

    files: list[Path]  # new, or corrected under the same name: to load
    still_refused: list[str]  # content refused before, not loaded again until it changes: why, per file


def pending_files(lake: Lake, paths: list[Path]) -> Pending:
    """The files of `paths` whose content is neither the load in force for their name nor refused before;
    a file that is not there raises SourceFormatError (nothing to load: the source is wrong)."""
    accepted = lake.accepted()
    refused_before = {(record.key, record.sha256): why for record, why in lake.refused()}
    files, still_refused = [], []
    for path in paths:
        if not path.exists():
            raise SourceFormatError(f"{path}: {NOT_FOUND}")
        key, sha256 = file_key(path), _checksum(path)
        if key in accepted and accepted[key].sha256 == sha256:
            continue
        if (key, sha256) in refused_before:
            still_refused.append(
                f"{path} is still refused (fix the file to load it): {refused_before[key, sha256]}"
            )
            continue
        files.append(path)
    return Pending(files, still_refused)


def _checksum(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:  # unreadable: its load says why
        return None


def _unreadable(path: Path, error: SourceFormatError) -> GateResult:
    return _refused(path, "the file is readable as a known export format", str(error))


def _refused(path: Path, rule: str, observed: str, gate: str = "raw") -> GateResult:
    return GateResult(gate, str(path), (Outcome(rule, observed, False, "duckdb"),))


def _other_grain(lake: Lake, key: str, table: str | None) -> str | None:
    """Why a load of a customer table of mapping `table` (None: a file of lines) cannot join the history:
    the other files in force are of the other grain, or tables of another mapping; None when it can."""
    others = [r for r in lake.accepted().values() if r.key != key]
    tables = {r.key: r.mapping for r in others if (lake.loads / r.load_id / TABLE_ROWS).exists()}
    lines = [r.key for r in others if r.key not in tables]
    if table is None and tables:
        return (
            f"the history holds customer tables ({', '.join(sorted(tables))}): a file of lines needs a "
            "warehouse of its own (RETAIL_SEG_WAREHOUSE)"
        )
    if table is not None and lines:
        return (
            f"the history holds files of lines ({', '.join(sorted(lines))}): a customer table needs a "
            "warehouse of its own (RETAIL_SEG_WAREHOUSE)"
        )
    mixed = sorted(k for k, m in tables.items() if m != table)
    if table is not None and mixed:
        held = ", ".join(mixed)
        return f"the history holds customer tables of another mapping ({held}): one mapping per history"
    return None


def _copy(conn: duckdb.DuckDBPyConnection, table: str, target: Path) -> None:
    quoted = str(target).replace("'", "''")
    conn.execute(f"COPY (SELECT * FROM {table}) TO '{quoted}' (FORMAT parquet)")


def load_file(
    path: Path,
    lake: Lake,
    load_id: str,
    run_id: str,
    rules: LoadRules,
    mappings: tuple[Mapping, ...],
    id_key: str | None,
    memory_limit: str = "2GB",
    follow_links: bool = True,
    tables: tuple[CustomerMapping, ...] = (),
) -> LoadOutcome:
    """Load one file into the lake; accepted only when the raw and staging gates pass, refused (and kept
    aside with its lines) otherwise. Nothing in force changes unless the load is accepted. A file whose
    header is one of `tables`' is a customer table (one row per customer), loaded as such."""
    load_id, folder = lake.begin_attempt(load_id)
    record = LoadRecord(
        load_id=load_id,
        key=file_key(path),
        source_file=str(path),
        sha256="",
        bytes=0,
        mapping="",
        lines=0,
        clean=0,
        rejected=0,
        loaded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds"),
        run_id=run_id,
    )
    config = {"memory_limit": memory_limit, "temp_directory": str(folder / "spill")}
    # A database file of the load's own, not one in memory: its tables are stored compressed, where an
    # in-memory database would hold (and, past the memory limit, spill) every value uncompressed.
    with duckdb.connect(str(folder / "load.duckdb"), config=config) as conn:
        readable = path.is_file() and (follow_links or not path.is_symlink())
        recognised = recognise(conn, path, tables) if readable else None
        other = _other_grain(lake, record.key, recognised[0].name if recognised else None)
        if other:
            outcome = LoadOutcome(record, _refused(path, "one history, one grain", other), refused_at="raw")
        elif recognised:
            outcome = _judge_table(conn, path, folder, record, rules, *recognised, id_key, follow_links)
        else:
            outcome = _judge(conn, path, folder, record, rules, mappings, id_key, follow_links)
    _remove_scratch(folder)
    if outcome.accepted:
        outcome = _in_the_history_currency(lake, outcome, folder)
    if not outcome.accepted:
        gate = outcome.staging_gate if outcome.refused_at == "staging" else outcome.raw_gate
        return replace(outcome, kept=lake.refuse(outcome.record, gate.message()))
    pause_point("load accepting")
    return replace(outcome, superseded=lake.accept(outcome.record))


def _judge(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    folder: Path,
    record: LoadRecord,
    rules: LoadRules,
    mappings: tuple[Mapping, ...],
    id_key: str | None,
    follow_links: bool,
) -> LoadOutcome:
    """Read, type and judge the file's lines, writing them into `folder`; the verdict, not yet acted on."""
    try:
        loaded = load_raw(
            conn,
            path,
            record.load_id,
            scratch=folder,
            follow_links=follow_links,
            mappings=mappings,
            id_key=id_key,
        )
    except SourceFormatError as error:
        return LoadOutcome(record, _unreadable(path, error), refused_at="raw")
    record = _with_source(record, loaded, conn)
    gate = raw_gate(
        conn,
        RAW_TRANSACTIONS.candidate,
        loaded.format,
        max_missing_customer_share=rules.max_missing_customer_share,
        max_unparseable_share=rules.max_unparseable_share,
    )
    if not gate.passed:
        _copy(conn, str(RAW_TRANSACTIONS.candidate), folder / "raw.parquet")
        return LoadOutcome(record, gate, refused_at="raw")
    publish(conn, RAW_TRANSACTIONS, RAW_LOADS)
    # A quantity is absurd against what its product's lines carry in the whole history, not in one file
    # (a month may hold a product's one entry error and nothing else): the history judges it.
    cleaning = clean_transactions(
        conn,
        run_date=rules.run_date,
        mapping=loaded.format,
        max_abs_quantity=rules.max_abs_quantity,
        absurd_factor=None,
        earliest_date=rules.earliest_date,
        product_quantities=folder / QUANTITIES,
        written=(folder / LINES, folder / REJECTED),
    )
    staging = staging_gate(
        conn,
        STAGING_TRANSACTIONS.candidate,
        REJECTED_ROWS.candidate,
        run_date=rules.run_date,
        earliest_date=rules.earliest_date,
        max_rejected_share=rules.max_rejected_share,
    )
    record = _with_counts(record, cleaning)
    if not staging.passed:
        conn.execute(f"DROP VIEW {STAGING_TRANSACTIONS.candidate}")
        (folder / LINES).unlink()  # a refused load keeps what was rejected, with its reasons
        return LoadOutcome(record, gate, staging, cleaning, refused_at="staging")
    # The lines summed per invoice, kept with them: what a history's features read.
    conn.execute(
        f"COPY ({invoices_sql(STAGING_TRANSACTIONS.candidate)}) TO {literal(str(folder / INVOICES))} "
        "(FORMAT parquet)"
    )
    return LoadOutcome(record, gate, staging, cleaning)


def _judge_table(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    folder: Path,
    record: LoadRecord,
    rules: LoadRules,
    mapping: CustomerMapping,
    found: dict[str, str],
    id_key: str | None,
    follow_links: bool,
) -> LoadOutcome:
    """A customer table's load: typed and judged from a snapshot of the file, the verdict not yet acted on."""
    (folder / SNAPSHOTS).mkdir(exist_ok=True)
    if mapping.personal_customer_id and not id_key:
        why = (
            f"{path.name}: its customer key is personal data and no key to hash it is set (RETAIL_SEG_ID_KEY)"
        )
        return LoadOutcome(record, _refused(path, "a personal key is hashed", why), refused_at="raw")
    try:
        readable, digest, size = snapshot(path, folder / SNAPSHOTS, follow_links)
    except SourceFormatError as error:
        return LoadOutcome(record, _unreadable(path, error), refused_at="raw")
    if recognise(conn, readable, (mapping,)) is None:  # the bytes loaded are the bytes recognised
        why = f"{path.name} changed while it was read: its header is no longer {mapping.name}'s"
        return LoadOutcome(
            record, _refused(path, "the file is readable as a known export format", why), refused_at="raw"
        )
    table = load_customer_table(
        conn,
        readable,
        path.name,
        mapping,
        found,
        record.load_id,
        folder,
        run_date=rules.run_date,
        id_key=id_key,
        max_missing_customer_share=rules.max_missing_customer_share,
        max_unparseable_share=rules.max_unparseable_share,
        max_rejected_share=rules.max_rejected_share,
    )
    record = replace(
        record,
        sha256=digest,
        bytes=size,
        mapping=mapping.name,
        lines=table.rows,
        clean=table.clean,
        rejected=table.rejected,
    )
    if not table.raw_gate.passed:
        return LoadOutcome(record, table.raw_gate, refused_at="raw")
    if not table.staging_gate.passed:
        return LoadOutcome(record, table.raw_gate, table.staging_gate, refused_at="staging")
    return LoadOutcome(record, table.raw_gate, table.staging_gate)


def _in_the_history_currency(lake: Lake, outcome: LoadOutcome, folder: Path) -> LoadOutcome:
    """The outcome, refused at staging when its amounts are in another currency than the other files of
    the history (a correction of the same file replaces its own)."""
    others = [r for r in lake.accepted().values() if r.key != outcome.record.key]
    apart = currencies_apart([*others, outcome.record])
    if apart is None:
        return outcome
    observed = f"{outcome.record.key}: {apart}"
    gate = _refused(Path(outcome.record.source_file), "one history, one currency", observed, "staging")
    (folder / LINES).unlink(missing_ok=True)  # as any refused load: its rejected lines are kept
    (folder / INVOICES).unlink(missing_ok=True)
    return replace(outcome, staging_gate=gate, refused_at="staging")


def _remove_scratch(folder: Path) -> None:
    """What a load used while it worked: its database file, its snapshot and what DuckDB spilled."""
    for scratch in ("spill", SNAPSHOTS):
        shutil.rmtree(folder / scratch, ignore_errors=True)
    for name in ("load.duckdb", "load.duckdb.wal"):
        (folder / name).unlink(missing_ok=True)


def _with_source(record: LoadRecord, loaded: LoadedSource, conn: duckdb.DuckDBPyConnection) -> LoadRecord:
    [(size,)] = conn.execute(f"SELECT bytes FROM {RAW_LOADS.candidate}").fetchall()
    return LoadRecord(
        **{
            **record.__dict__,
            "sha256": loaded.sha256,
            "bytes": size,
            "mapping": loaded.format.name,
            "encoding": loaded.encoding,
            "lines": row_count(conn, RAW_TRANSACTIONS.candidate),
        }
    )


def _with_counts(record: LoadRecord, cleaning: CleaningResult) -> LoadRecord:
    return LoadRecord(
        **{
            **record.__dict__,
            "clean": cleaning.clean_rows,
            "rejected": cleaning.rejected_rows,
            "currency": cleaning.currency,
        }
    )
