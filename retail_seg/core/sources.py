"""Source files: recognise the export format from its header and load it as text into `raw.transactions`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from retail_seg.core.warehouse import RAW_TRANSACTIONS, build_candidate

CANONICAL_COLUMNS = (
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "unit_price",
    "invoice_date",
    "customer_id",
    "country",
)
DEMOGRAPHIC_COLUMNS = ("age", "gender", "product_category")
RAW_COLUMNS = CANONICAL_COLUMNS + DEMOGRAPHIC_COLUMNS


class SourceFormatError(ValueError):
    """A source file that cannot be read as any known export format."""


@dataclass(frozen=True)
class SourceFormat:
    """An export format: which source column feeds each canonical column."""

    name: str
    columns: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.name} ({', '.join(self.columns.values())})"


FORMATS = (
    SourceFormat(
        name="canonical",
        columns={c: c for c in CANONICAL_COLUMNS},
        optional={c: c for c in DEMOGRAPHIC_COLUMNS},
    ),
    SourceFormat(
        name="uci_online_retail",
        columns=dict(
            zip(
                CANONICAL_COLUMNS,
                (
                    "InvoiceNo",
                    "StockCode",
                    "Description",
                    "Quantity",
                    "UnitPrice",
                    "InvoiceDate",
                    "CustomerID",
                    "Country",
                ),
                strict=True,
            )
        ),
    ),
    SourceFormat(
        name="uci_online_retail_ii",
        columns=dict(
            zip(
                CANONICAL_COLUMNS,
                (
                    "Invoice",
                    "StockCode",
                    "Description",
                    "Quantity",
                    "Price",
                    "InvoiceDate",
                    "Customer ID",
                    "Country",
                ),
                strict=True,
            )
        ),
    ),
)


@dataclass(frozen=True)
class LoadedSource:
    """What a load put into `raw.transactions`'s candidate."""

    path: Path
    format: SourceFormat
    sha256: str
    rows: int
    encoding: str


CSV_SUFFIXES = (".csv", ".txt", ".tsv")
SUPPORTED_SUFFIXES = (*CSV_SUFFIXES, ".parquet")
# UTF-8 first; exports from older tills and Excel are often Latin-1 (the UCI original is).
CSV_ENCODINGS = ("utf-8", "latin-1")


def _reader_sql(path: Path, encoding: str = "utf-8") -> str:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "read_parquet(?)"
    if suffix in CSV_SUFFIXES:
        # null_padding: a line cut short (a truncated export) reads with NULLs in its missing columns,
        # so staging rejects that one line instead of the sniffer misreading the whole file.
        return f"read_csv(?, all_varchar = true, header = true, null_padding = true, encoding = '{encoding}')"
    raise SourceFormatError(f"{path.name}: file type '{suffix}' not supported; expected .csv or .parquet")


def _is_encoding_error(error: duckdb.Error) -> bool:
    return "unicode" in str(error).lower()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise SourceFormatError(f"{path}: source file not found")
    if path.stat().st_size == 0:
        raise SourceFormatError(
            f"{path.name}: file is empty (0 bytes); expected a header and transaction lines"
        )


def detect_format(path: Path, header: list[str]) -> tuple[SourceFormat, dict[str, str]]:
    """The first known format whose columns the header has, and the header's spelling of each.

    Matching ignores case and surrounding spaces, which spreadsheet round-trips change.
    """
    by_key = {name.strip().lower(): name for name in header}
    for fmt in FORMATS:
        wanted = fmt.columns | fmt.optional
        found = {canon: by_key[src.lower()] for canon, src in wanted.items() if src.lower() in by_key}
        if all(canon in found for canon in fmt.columns):
            return fmt, found
    closest = max(FORMATS, key=lambda f: sum(src.lower() in by_key for src in f.columns.values()))
    missing = [src for src in closest.columns.values() if src.lower() not in by_key]
    known = "; ".join(f.describe() for f in FORMATS)
    raise SourceFormatError(
        f"{path.name}: header not recognised; closest format {closest.name} is missing column"
        f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}; "
        f"columns found: {', '.join(header) or '(none)'}; formats known: {known}"
    )


def file_sha256(path: Path) -> str:
    """Checksum of a source file, for lineage and for telling a new file from one already loaded."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_raw(conn: duckdb.DuckDBPyConnection, path: Path, load_id: str) -> LoadedSource:
    """Build `raw.transactions`'s candidate from a source file: canonical names, every value as text.

    Keeping text means nothing is lost or coerced at the door; staging decides what parses, and
    rejected rows keep the values exactly as the file had them.
    """
    path = Path(path)
    _check_exists(path)
    encodings = CSV_ENCODINGS if path.suffix.lower() in CSV_SUFFIXES else ("binary",)
    for encoding in encodings:
        try:
            fmt = _build_raw_candidate(conn, path, load_id, encoding)
            break
        except duckdb.Error as error:
            if not _is_encoding_error(error) or encoding == encodings[-1]:
                raise SourceFormatError(f"{path.name}: cannot be read: {_first_line(error)}") from error
    rows = conn.execute(f"SELECT count(*) FROM {RAW_TRANSACTIONS.candidate}").fetchall()[0][0]
    return LoadedSource(path=path, format=fmt, sha256=file_sha256(path), rows=rows, encoding=encoding)


def _build_raw_candidate(
    conn: duckdb.DuckDBPyConnection, path: Path, load_id: str, encoding: str
) -> SourceFormat:
    header = [
        row[0]
        for row in conn.execute(
            f"DESCRIBE SELECT * FROM {_reader_sql(path, encoding)}", [str(path)]
        ).fetchall()
    ]
    fmt, found = detect_format(path, header)
    selected = ",\n".join(
        f"CAST({_quote(found[c])} AS VARCHAR) AS {c}" if c in found else f"CAST(NULL AS VARCHAR) AS {c}"
        for c in RAW_COLUMNS
    )
    sql = f"""
        SELECT CAST(? AS VARCHAR) AS load_id,
               CAST(? AS VARCHAR) AS source_file,
               row_number() OVER () AS source_row,
               {selected}
        FROM {_reader_sql(path, encoding)}
    """
    build_candidate(conn, RAW_TRANSACTIONS, sql, [load_id, str(path), str(path)])
    return fmt
