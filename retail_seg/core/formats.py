"""Export formats: which source column feeds each canonical column, recognised from a file's header."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    """An export format: which source column feeds each canonical column (unmapped ones stay empty)."""

    name: str
    columns: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    uci_codes: bool = False
    """Carries the UCI codes: A-prefixed adjustment invoices, non-product stock codes (POST, M, ...)."""

    def describe(self) -> str:
        return f"{self.name} ({', '.join(dict.fromkeys(self.columns.values()))})"


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
        uci_codes=True,
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
        uci_codes=True,
    ),
    # Kaggle's "Retail Sales Dataset": one line per transaction, a category instead of a product, and
    # the customer's age and gender on every line; no description or country.
    SourceFormat(
        name="kaggle_retail_sales",
        columns={
            "invoice_no": "Transaction ID",
            "stock_code": "Product Category",
            "quantity": "Quantity",
            "unit_price": "Price per Unit",
            "invoice_date": "Date",
            "customer_id": "Customer ID",
            "age": "Age",
            "gender": "Gender",
            "product_category": "Product Category",
        },
    ),
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
    # The header's own names are never repeated: a file that is not an export (a key file linked in by
    # mistake) could carry anything there. The expected names and a count say enough to fix it.
    raise SourceFormatError(
        f"{path.name}: header not recognised; closest format {closest.name} is missing column"
        f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}; "
        f"the header has {len(header)} column{'s' if len(header) != 1 else ''}, "
        f"{len(_found(closest, by_key))} of them {closest.name}'s; formats known: {known}"
    )


def _found(fmt: SourceFormat, by_key: dict[str, str]) -> list[str]:
    """The columns of `fmt` that a header (lower-cased name → name) has."""
    return [src for src in (fmt.columns | fmt.optional).values() if src.lower() in by_key]


# Formats whose exports carry the UCI retailer's adjustment invoices and non-product stock codes.
UCI_CODED_FORMATS = [f.name for f in FORMATS if f.uci_codes]
