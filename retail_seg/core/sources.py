"""Sources: a file, a folder or a glob of exports of one format, loaded as text into `raw.transactions`."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_seg.core.excel import workbook_to_csv
from retail_seg.core.mappings import (
    CANONICAL,
    LINE_COLUMNS,
    Mapping,
    SourceFormatError,
    detect_mapping,
    load_mappings,
)
from retail_seg.core.parsing import INVOICE_NO, hashed_key_sql, literal, parsed_sql
from retail_seg.core.tables import RAW_LOADS, RAW_TRANSACTIONS
from retail_seg.core.warehouse import build_candidate, drop, ensure_schemas, row_count

# The canonical line's columns, and every canonical column the raw layer keeps.
CANONICAL_COLUMNS = LINE_COLUMNS
RAW_COLUMNS = CANONICAL
__all__ = ["CANONICAL_COLUMNS", "RAW_COLUMNS", "SourceFormatError", "file_sha256", "load_raw", "source_files"]

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
SUPPORTED_SUFFIXES = (*CSV_SUFFIXES, ".parquet", *EXCEL_SUFFIXES)
# UTF-8 first; exports from older tills and Excel are often Latin-1 (the UCI original is).
CSV_ENCODINGS = ("utf-8", "latin-1")


@dataclass(frozen=True)
class LoadedSource:
    """What a load put into `raw.transactions`'s candidate."""

    files: tuple[Path, ...]
    format: Mapping
    sha256: str
    rows: int
    encodings: tuple[str, ...]

    @property
    def encoding(self) -> str:
        return ", ".join(dict.fromkeys(self.encodings))


# The careful CSV reader's longest line: far past any real export line, and DuckDB holds it in memory.
MAX_LINE_BYTES = 64 * 1024 * 1024


def _reader_sql(
    path: Path, encoding: str = "utf-8", careful: bool = False, delimiter: str | None = None, skip: int = 0
) -> str:
    if path.suffix.lower() == ".parquet":
        return "read_parquet($path, file_row_number = true)"
    # null_padding: a line cut short (a truncated export) reads with NULLs in its missing columns, so
    # staging rejects that one line instead of the sniffer misreading the whole file. DuckDB's fast
    # parallel reader cannot combine it with a line break inside quotes, nor read a line over 2 MB: the
    # careful reader (one thread) can, and is used only for a file the fast one refuses.
    # comment = '': DuckDB's sniffer may take '#' for a comment mark and drop, without a word, every line
    # that starts with it, as a Shopify export's order names all do ("#1001"). Every line is a line.
    options = f"all_varchar = true, header = true, null_padding = true, comment = '', encoding = '{encoding}'"
    if delimiter:
        options += f", delim = {literal(delimiter)}"
    if careful:
        options += f", parallel = false, max_line_size = {MAX_LINE_BYTES}"
    if skip:
        options += f", skip = {skip}"
    return f"read_csv($path, {options})"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def csv_reason(error: Exception) -> str:
    """DuckDB's reason for refusing a CSV, with the line it names but without the line's content (which
    could be anything a file holds) or the reader's option dump."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    where = lines[0].split("Error: ", 1)[-1]
    reason = []
    for line in lines[1:]:
        if line.startswith(("file =", "Possible Solution", "LINE ")):
            break
        if line and not line.startswith("Original Line"):
            reason.append(line)
    return f"{where}: {' '.join(reason)}" if reason else where


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# How a missing source is named, in every message that says so (the CLI's exit code 66 looks for it).
NOT_FOUND = "source file not found"
NO_FILES = "no export files found"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SourceFormatError(f"{path}: {NOT_FOUND}")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        expected = ", ".join(SUPPORTED_SUFFIXES)
        raise SourceFormatError(
            f"{path.name}: file type '{path.suffix}' not supported; expected one of {expected}"
        )
    if path.stat().st_size == 0:
        raise SourceFormatError(
            f"{path.name}: file is empty (0 bytes); expected a header and transaction lines"
        )


def source_files(source: Path) -> list[Path]:
    """The export files a source names: the file itself, every export in a folder, or a glob's matches,
    each checked to be a readable export."""
    files = source_paths(source)
    for path in files:
        _check_file(path)
    return files


def source_paths(source: Path) -> list[Path]:
    """The files a source names, unchecked (each is then loaded, or refused, on its own)."""
    text = str(source)
    if any(char in Path(text).name for char in "*?["):
        files = sorted(p for p in Path(text).parent.glob(Path(text).name) if p.is_file())
    elif Path(text).is_dir():
        files = sorted(
            p for p in Path(text).iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
        )
    else:
        files = [Path(text)]
    if not files:
        raise SourceFormatError(f"{source}: {NO_FILES} ({', '.join(SUPPORTED_SUFFIXES)})")
    return files


def file_sha256(path: Path) -> str:
    """Checksum of a source file, for lineage and for telling a new file from one already loaded."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot(path: Path, folder: Path, follow_links: bool = True) -> tuple[Path, str, int]:
    """Copy a file into `folder`, hashing its bytes as they are copied; return the copy, its SHA-256 and
    its size. What is loaded and what is recorded are then the same bytes, however the file changes
    meanwhile (an export still being written, a file replaced under its name). The copy stops at the
    size the file had when it was opened, so a file written faster than it can be copied is still
    taken, as it was then, and never fills the disk. Without `follow_links`, a file that has become a
    link since it was checked is refused, not followed."""
    digest = hashlib.sha256()
    copy = folder / f"{len(list(folder.iterdir()))}{path.suffix.lower()}"
    size = 0
    flags = os.O_RDONLY | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        problem = "it is a link" if error.errno == errno.ELOOP else "this user may not read it"
        if error.errno == errno.ENOENT:
            raise SourceFormatError(f"{path}: {NOT_FOUND}") from error
        raise SourceFormatError(f"{path.name}: cannot be opened: {problem}") from error
    with os.fdopen(descriptor, "rb") as source, copy.open("wb") as target:
        remaining = os.fstat(source.fileno()).st_size
        while remaining and (block := source.read(min(remaining, 1 << 20))):
            digest.update(block)
            target.write(block)
            size += len(block)
            remaining -= len(block)
    return copy, digest.hexdigest(), size


def source_sha256(names_and_digests: list[tuple[str, str]]) -> str:
    """One checksum for a source: the file's own, or over each file's name and checksum for several."""
    if len(names_and_digests) == 1:
        return names_and_digests[0][1]
    listing = "\n".join(f"{name}:{digest}" for name, digest in names_and_digests)
    return hashlib.sha256(listing.encode()).hexdigest()


def load_raw(
    conn: duckdb.DuckDBPyConnection,
    source: Path,
    load_id: str,
    scratch: Path | None = None,
    follow_links: bool = True,
    mappings: tuple[Mapping, ...] | None = None,
    id_key: str | None = None,
) -> LoadedSource:
    """Make `raw.transactions`'s candidate from a source: canonical names, every value as text, and
    beside the text the values the mapping parses (`parsing.parsed_sql`).

    Keeping text means nothing is lost or coerced at the door; staging decides what is clean, and
    rejected rows keep the values exactly as the file had them. The candidate is a view over what was
    read: the file's snapshot itself where DuckDB can read it in place (a Parquet file, while `scratch`
    keeps the snapshot for the caller's lifetime), a table of its text otherwise (a CSV, whose lines DuckDB
    numbers only once stored; a file keyed by personal data, whose key is hashed as it is stored). Every
    value is then typed on the way past, not copied as text first.

    Several files load as one source and must share a format; lines repeated across overlapping exports
    are left for staging's duplicate rule, so an invoice in two files counts once. Each file is read from
    a snapshot taken under `scratch` (a temporary folder by default), whose checksum is the one recorded.
    The format is the first of `mappings` (the built-in ones by default) whose columns the header has;
    `id_key` hashes the customer key of a mapping that declares it personal.
    """
    mappings = mappings if mappings is not None else load_mappings()
    files = source_files(Path(source))
    ensure_schemas(conn)
    formats: list[Mapping] = []
    encodings, digests, selects, size = [], [], [], 0
    with _snapshots(scratch) as (folder, kept):
        for index, path in enumerate(files):
            readable, digest, file_size = snapshot(path, folder, follow_links)
            digests.append((path.name, digest))
            size += file_size
            if path.suffix.lower() in EXCEL_SUFFIXES:
                # DuckDB's Excel reader is an extension that cannot be downloaded here, so workbooks are
                # streamed to CSV first (every sheet, in order), never held in memory whole.
                readable = workbook_to_csv(readable, folder / f"{index}.csv", name=path.name)
            read = _File(path, readable, load_id, index, in_place=kept)
            fmt, encoding, select = _read_file(conn, read, mappings, id_key)
            if formats and fmt != formats[0]:
                raise SourceFormatError(
                    f"{path.name} is {fmt.name} but {files[0].name} is {formats[0].name}: "
                    "the files of one source must share a format"
                )
            formats.append(fmt)
            encodings.append(encoding)
            selects.append(select)
        drop(conn, RAW_TRANSACTIONS.candidate)
        union = "\nUNION ALL\n".join(selects)
        conn.execute(f"CREATE VIEW {RAW_TRANSACTIONS.candidate} AS {union}")
        rows = row_count(conn, RAW_TRANSACTIONS.candidate)
    loaded = LoadedSource(tuple(files), formats[0], source_sha256(digests), rows, tuple(encodings))
    build_candidate(
        conn,
        RAW_LOADS,
        "SELECT ? AS load_id, ? AS source, ? AS source_sha256, ? AS source_format, "
        "CAST(? AS VARCHAR[]) AS encodings, CAST(? AS VARCHAR[]) AS files, CAST(? AS BIGINT) AS bytes, "
        "CAST(? AS BIGINT) AS lines",
        [load_id, str(source), loaded.sha256, fmt.name, encodings, [str(f) for f in files], size, rows],
    )
    return loaded


@contextmanager
def _snapshots(scratch: Path | None) -> Iterator[tuple[Path, bool]]:
    """Where a load's snapshots go, and whether they outlive the load: under `scratch`, kept for the
    caller (who removes the folder); a temporary folder, removed once read, otherwise."""
    if scratch is not None:
        folder = Path(scratch) / SNAPSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        yield folder, True
        return
    with tempfile.TemporaryDirectory(prefix="retail_seg_") as folder:
        yield Path(folder), False


# The folder under a load's scratch that holds its snapshots.
SNAPSHOTS = "snapshots"


@dataclass(frozen=True)
class _File:
    """One file of a source as it is read: its name, its snapshot, and where its text lives."""

    path: Path
    readable: Path
    load_id: str
    index: int
    in_place: bool

    @property
    def is_csv(self) -> bool:
        return self.readable.suffix.lower() in CSV_SUFFIXES

    @property
    def text(self) -> str:
        """The table that holds the file's text when it is not read in place."""
        return f"{RAW_TRANSACTIONS.candidate}_read_{self.index}"


def _read_file(
    conn: duckdb.DuckDBPyConnection, read: _File, mappings: tuple[Mapping, ...], id_key: str | None
) -> tuple[Mapping, str, str]:
    """The mapping of one file, the encoding that read it, and the SELECT of its raw lines, trying each
    text encoding in turn, and for a CSV the fast parallel reader before the careful one."""
    encodings = CSV_ENCODINGS if read.is_csv else ("binary",)
    for encoding in encodings:
        for careful in (False, True) if read.is_csv else (False,):
            try:
                fmt, select = _lines_sql(conn, read, encoding, careful, mappings, id_key)
                return fmt, encoding, select
            except duckdb.Error as error:
                if "unicode" in str(error).lower() and encoding != encodings[-1]:
                    break  # the next encoding
                if read.is_csv and not careful and "CSV Error" in str(error):
                    continue  # the careful reader
                reason = csv_reason(error) if read.is_csv else _first_line(error)
                reason = reason.replace(str(read.readable), read.path.name)
                raise SourceFormatError(f"{read.path.name}: cannot be read: {reason}") from error
    raise AssertionError("unreachable: the last reader either loads or raises")


def _header(conn: duckdb.DuckDBPyConnection, reader: str, readable: Path) -> list[str]:
    return [
        row[0] for row in conn.execute(f"DESCRIBE SELECT * FROM {reader}", {"path": str(readable)}).fetchall()
    ]


def _recognised(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    readable: Path,
    encoding: str,
    careful: bool,
    mappings: tuple[Mapping, ...],
) -> tuple[Mapping, dict[str, str], str, list[str]]:
    """The mapping of a file, the header's spelling of its columns, and the reader and header that read it.

    DuckDB's sniffer finds the delimiter of most exports; where the header it read matches no mapping, the
    delimiters mappings declare are tried before the file is refused.
    """
    reader = _reader_sql(readable, encoding, careful)
    header = _header(conn, reader, readable)
    try:
        return (*detect_mapping(path.name, _without_row_number(header), mappings), reader, header)
    except SourceFormatError as refusal:
        if readable.suffix.lower() not in CSV_SUFFIXES:
            raise
        for delimiter in dict.fromkeys(m.delimiter for m in mappings if m.delimiter):
            declared = _reader_sql(readable, encoding, careful, delimiter)
            header = _header(conn, declared, readable)
            try:
                return (*detect_mapping(path.name, header, mappings), declared, header)
            except SourceFormatError:
                continue
        _refuse_header_below(
            path.name,
            mappings,
            lambda skip: _header(conn, _reader_sql(readable, encoding, careful, skip=skip), readable),
        )
        raise refusal from None


# How far down a header is looked for when the first line is not one (a report's title, a date range).
HEADER_SEARCH_LINES = 5


def _refuse_header_below(
    name: str, mappings: tuple[Mapping, ...], header_after: Callable[[int], list[str]]
) -> None:
    """Refuse, saying where, a file whose header a few lines down (`header_after(lines skipped)`) is a
    known format's: those lines are a title or a note, not data, and the file loads once they are removed.
    What they say is not repeated."""
    for skipped in range(1, HEADER_SEARCH_LINES + 1):
        try:
            mapping, _ = detect_mapping(name, _without_row_number(header_after(skipped)), mappings)
        except (SourceFormatError, duckdb.Error):
            continue
        others = "another line" if skipped == 1 else f"{skipped} other lines"
        raise SourceFormatError(
            f"{name}: the header is below {others} (a title or a note?); remove "
            f"{'it' if skipped == 1 else 'them'} and the file loads as {mapping.name}"
        )


def _without_row_number(header: list[str]) -> list[str]:
    return [name for name in header if name != "file_row_number"]


def _lines_sql(
    conn: duckdb.DuckDBPyConnection,
    read: _File,
    encoding: str,
    careful: bool,
    mappings: tuple[Mapping, ...],
    id_key: str | None,
) -> tuple[Mapping, str]:
    """The file's mapping, and a SELECT (with no parameters, for a view) of its lines as raw text with
    their parsed values; its text is stored first unless the file can be read in place."""
    mapping, found, reader, header = _recognised(conn, read.path, read.readable, encoding, careful, mappings)
    reader = reader.replace("$path", literal(str(read.readable)))
    columns = {
        c: f"CAST({_quote(found[c])} AS VARCHAR)" if c in found else "CAST(NULL AS VARCHAR)"
        for c in RAW_COLUMNS
    }
    params = {}
    if mapping.personal_customer_id:  # the address itself never reaches the warehouse
        if not id_key:
            raise SourceFormatError(
                f"{read.path.name}: {mapping.name} keys customers by personal data, "
                "and no key to hash it is set"
            )
        columns["customer_id"] = hashed_key_sql(columns["customer_id"])
        params["id_key"] = id_key
    selected = ",\n".join(f"{expr} AS {c}" for c, expr in columns.items())
    # Parquet numbers its rows as it reads, in parallel; a CSV's lines are numbered by the order they are
    # stored in (DuckDB keeps a file's order), which costs nothing, where a window over the scan would
    # cost more than reading the file.
    parquet = "file_row_number" in header
    if parquet and read.in_place and not params:
        lines = f"SELECT file_row_number + 1 AS source_row, {selected} FROM {reader}"
    else:
        numbered = "file_row_number + 1 AS source_row, " if parquet else ""
        conn.execute(
            f"CREATE OR REPLACE TABLE {read.text} AS SELECT {numbered}{selected} FROM {reader}", params
        )
        lines = (
            f"SELECT * FROM {read.text}" if parquet else f"SELECT rowid + 1 AS source_row, * FROM {read.text}"
        )
    # Order-level values an export writes on an order's first line only, carried to its other lines. A line
    # with no order number belongs to no order: it keeps its own, and takes none from another such line.
    filled = ", ".join(
        f"CASE WHEN {INVOICE_NO} IS NULL THEN nullif(trim({c}), '') ELSE coalesce(nullif(trim({c}), ''), "
        f"last_value(nullif(trim({c}), '') IGNORE NULLS) OVER "
        f"(PARTITION BY {INVOICE_NO} ORDER BY source_row ROWS UNBOUNDED PRECEDING)) END AS {c}"
        for c in mapping.fill_down
    )
    replaced = f" REPLACE ({filled})" if filled else ""
    # Each value is parsed on the way past its text: every rule and gate reads the typed value, and the
    # text stays for the lines a rule rejects.
    parsed = ", ".join(f"{expr} AS {name}" for name, expr in parsed_sql(mapping).items())
    select = f"""
        SELECT *, {parsed}
        FROM (
            SELECT {literal(read.load_id)} AS load_id,
                   {literal(str(read.path))} AS source_file,
                   source_row,
                   {literal(mapping.name)} AS source_format,
                   * EXCLUDE (source_row){replaced}
            FROM ({lines})
        )
    """
    return mapping, select
