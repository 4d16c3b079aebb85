"""Mappings: how one retailer's export becomes canonical invoice lines, declared once in a small TOML file.

A mapping names which of the export's columns is the invoice, the customer, the product, the quantity,
the unit price or the line total, the date, the country and the demographics; how its numbers and dates
are written; how it marks returns; which of its codes are not products; its currency; and whether its
customer key is personal data. The built-in formats (`retail_seg/mappings/*.toml`) are mappings of the
same kind, and a user's own sit in `RETAIL_SEG_MAPPINGS` (default `data/mappings/`). Conventions belong
to the mapping that declares them: a `C`-prefixed invoice is a return only where a mapping says so.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

BUILT_IN = Path(__file__).resolve().parents[1] / "mappings"

# The canonical line, in order; a mapping maps the required ones and may map the rest.
LINE_COLUMNS = (
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "unit_price",
    "invoice_date",
    "customer_id",
    "country",
)
EXTRA_COLUMNS = ("age", "gender", "product_category", "line_total", "currency", "status")
CANONICAL = LINE_COLUMNS + EXTRA_COLUMNS
REQUIRED = ("invoice_no", "quantity", "invoice_date", "customer_id")
SECTIONS = {
    "": {"name", "description", "grain"},
    "columns": set(CANONICAL),
    "optional": set(CANONICAL),
    "read": {"delimiter", "encoding"},
    "numbers": {"decimal", "thousands", "strip"},
    "dates": {"formats"},
    "returns": {"negative_quantity", "invoice_prefix", "status_values"},
    "rules": {"adjustment_prefix", "non_product_codes", "non_product_prefixes", "cancelled_statuses"},
    "orders": {"fill_down"},
    "currency": {"code", "rates"},
    "customer": {"personal"},
}


# A customer table's mapping: one row per customer, already aggregated (grain = "customers").
CUSTOMER_ONLY = ("rfm", "features", "categories", "model")
CUSTOMER_SECTIONS: dict[str, set[str] | None] = {
    "columns": {"customer_id"},
    "optional": {"age", "birth_year", "gender", "country", "first_purchase"},
    "rfm": {"recency_days", "last_purchase", "frequency", "monetary"},
    "features": None,
    "categories": None,
    "model": {"features", "log_transform", "outliers"},
    "dates": {"formats", "as_of"},
    "rules": {"oldest_age"},
}
# Every section a customer table's mapping may have: only what its load applies.
TABLE_SECTIONS = {
    "": SECTIONS[""],
    "read": {"delimiter"},
    "numbers": {"decimal"},
    "customer": {"personal"},
    **CUSTOMER_SECTIONS,
}
# Column names the load, the features and the EDA use themselves: a table's own names must differ.
RESERVED = {
    "customer_id",
    "load_id",
    "source_row",
    "as_of",
    "age",
    "birth_year",
    "gender",
    "country",
    "first_purchase",
    "last_purchase",
    "recency_days",
    "frequency",
    "monetary",
    "stated_age",
    "rule",
    "broken",
    "unparseable",
    "negative_spend",
    "raw_values",
    "tenure_days",
    "avg_order_value",
    "mean_days_between",
    "return_rate",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "lines",
    "distinct_products",
    "first_seen",
    "last_seen",
    "spend",
    "age_band",
    "purchased",
    "returned",
    "p_alive",
    "churn_risk",
    "clv",
    "label",
    "segment",
    "segment_id",
    "cluster",
}


class SourceFormatError(ValueError):
    """A source file that cannot be read as any known export format."""


class MappingError(SourceFormatError):
    """A mapping file that cannot be used: the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Mapping:
    """One export's declared shape."""

    name: str
    columns: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    description: str = ""
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str = "."
    thousands: str | None = None
    strip: tuple[str, ...] = ()
    date_formats: tuple[str, ...] = ()
    negative_quantity_is_return: bool = True
    return_prefix: str | None = None
    return_statuses: tuple[str, ...] = ()
    adjustment_prefix: str | None = None
    non_product_codes: tuple[str, ...] = ()
    non_product_prefixes: tuple[str, ...] = ()
    cancelled_statuses: tuple[str, ...] = ()
    fill_down: tuple[str, ...] = ()
    currency: str | None = None
    rates: dict[str, float] = field(default_factory=dict)
    personal_customer_id: bool = False
    source: Path | None = None

    def describe(self) -> str:
        return f"{self.name} ({', '.join(dict.fromkeys(self.columns.values()))})"

    def wanted(self) -> dict[str, str]:
        return self.columns | self.optional


def _fail(path: Path, where: str, problem: str) -> MappingError:
    return MappingError(f"{path.name}: {where}: {problem}")


def _strings(path: Path, where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, where, f"expected text or a list of texts, got {value!r}")
    return tuple(value)


def _text(path: Path, where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, where, f"expected text, got {value!r}")
    return value


def parse_mapping(path: Path) -> Mapping | CustomerMapping:
    """Read and check one mapping file: of transaction lines, or (grain = "customers") of a customer table."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise MappingError(f"{path.name}: not valid TOML: {error}") from error
    known_sections = TABLE_SECTIONS if raw.get("grain") == "customers" else SECTIONS
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in known_sections:
                raise _fail(
                    path,
                    f"[{key}]",
                    f"unknown section; known: {', '.join(sorted(s for s in known_sections if s))}",
                )
            if known_sections[key] is None:  # names of the table's own choosing
                continue
            for inner in value:
                if inner not in known_sections[key]:
                    raise _fail(
                        path,
                        f"[{key}] {inner}",
                        f"unknown key; known: {', '.join(sorted(known_sections[key]))}",
                    )
        elif key not in SECTIONS[""]:
            raise _fail(path, key, f"unknown key; known: {', '.join(sorted(SECTIONS['']))}")
    name = _text(path, "name", raw.get("name", path.stem))
    grain = raw.get("grain", "transactions")
    if grain == "customers":
        return parse_customer_mapping(path, raw, name)
    if grain != "transactions":
        raise _fail(path, "grain", f"expected 'transactions' or 'customers', got {grain!r}")
    for section in CUSTOMER_ONLY:
        if section in raw:
            raise _fail(path, f"[{section}]", "only a mapping with grain = 'customers' has this section")
    columns = {k: _text(path, f"[columns] {k}", v) for k, v in raw.get("columns", {}).items()}
    optional = {k: _text(path, f"[optional] {k}", v) for k, v in raw.get("optional", {}).items()}
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise _fail(
            path, "[columns]", f"missing {', '.join(missing)}: every mapping names {', '.join(REQUIRED)}"
        )
    if ("unit_price" in columns) == ("line_total" in columns):
        raise _fail(path, "[columns]", "name exactly one of unit_price and line_total")
    numbers, dates, returns = raw.get("numbers", {}), raw.get("dates", {}), raw.get("returns", {})
    rules, currency = raw.get("rules", {}), raw.get("currency", {})
    decimal = numbers.get("decimal", ".")
    if decimal not in (".", ","):
        raise _fail(path, "[numbers] decimal", f"expected '.' or ',', got {decimal!r}")
    rates = currency.get("rates", {})
    if not isinstance(rates, dict) or not all(isinstance(v, int | float) and v > 0 for v in rates.values()):
        raise _fail(
            path, "[currency] rates", "expected a table of currency = positive rate to the base currency"
        )
    if rates and "code" not in currency:
        raise _fail(path, "[currency] code", "rates convert into a base currency: name it as code")
    fill_down = _strings(path, "[orders] fill_down", raw.get("orders", {}).get("fill_down", []))
    unknown = [c for c in fill_down if c not in CANONICAL]
    if unknown:
        raise _fail(path, "[orders] fill_down", f"not canonical columns: {', '.join(unknown)}")
    return Mapping(
        name=name,
        description=raw.get("description", ""),
        columns=columns,
        optional=optional,
        delimiter=raw.get("read", {}).get("delimiter"),
        encoding=raw.get("read", {}).get("encoding"),
        decimal=decimal,
        thousands=numbers.get("thousands"),
        strip=_strings(path, "[numbers] strip", numbers.get("strip", [])),
        date_formats=_strings(path, "[dates] formats", dates.get("formats", [])),
        negative_quantity_is_return=bool(returns.get("negative_quantity", True)),
        return_prefix=returns.get("invoice_prefix"),
        return_statuses=tuple(
            s.lower() for s in _strings(path, "[returns] status_values", returns.get("status_values", []))
        ),
        adjustment_prefix=rules.get("adjustment_prefix"),
        non_product_codes=tuple(
            c.upper() for c in _strings(path, "[rules] non_product_codes", rules.get("non_product_codes", []))
        ),
        non_product_prefixes=tuple(
            p.upper()
            for p in _strings(path, "[rules] non_product_prefixes", rules.get("non_product_prefixes", []))
        ),
        cancelled_statuses=tuple(
            s.lower()
            for s in _strings(path, "[rules] cancelled_statuses", rules.get("cancelled_statuses", []))
        ),
        fill_down=fill_down,
        currency=currency.get("code"),
        rates={k.upper(): float(v) for k, v in rates.items()},
        personal_customer_id=bool(raw.get("customer", {}).get("personal", False)),
        source=path,
    )


def load_mappings(folder: Path | None = None) -> tuple[Mapping, ...]:
    """The user's transaction mappings in `folder` (first, so one can stand in for a built-in), then the
    built-in ones."""
    return tuple(m for m in _all_mappings(folder) if isinstance(m, Mapping))


def load_customer_mappings(folder: Path | None = None) -> tuple[CustomerMapping, ...]:
    """The mappings of tables with one row per customer, the user's first, then the built-in ones."""
    return tuple(m for m in _all_mappings(folder) if isinstance(m, CustomerMapping))


def _all_mappings(folder: Path | None) -> list[Mapping | CustomerMapping]:
    paths = sorted(Path(folder).glob("*.toml")) if folder and Path(folder).is_dir() else []
    mappings = [parse_mapping(p) for p in paths] + [parse_mapping(p) for p in sorted(BUILT_IN.glob("*.toml"))]
    names = [m.name for m in mappings]
    for name in set(names):
        if names.count(name) > 1 and sum(1 for m in mappings[: len(paths)] if m.name == name) > 1:
            raise MappingError(f"mapping {name!r} is declared twice in {folder}")
    return mappings


def detect_mapping(
    file_name: str, header: list[str], mappings: tuple[Mapping, ...]
) -> tuple[Mapping, dict[str, str]]:
    """The mapping whose columns the header has (the one matching most columns when several do, the first
    of those on a tie), and the header's spelling of each canonical column it maps.

    Matching ignores case and surrounding spaces, which spreadsheet round-trips change. The header's own
    names are never repeated in the error: a file that is not an export (a key file linked in by mistake)
    could carry anything there; the expected names and a count say enough to fix it.
    """
    by_key = {name.strip().lower(): name for name in header}
    matches = []
    for mapping in mappings:
        found = {
            canon: by_key[src.lower()] for canon, src in mapping.wanted().items() if src.lower() in by_key
        }
        if all(canon in found for canon in mapping.columns):
            matches.append((len(found), mapping, found))
    if matches:
        best = max(matches, key=lambda match: match[0])[0]
        _, mapping, found = next(match for match in matches if match[0] == best)
        return mapping, found
    closest = max(mappings, key=lambda m: sum(src.lower() in by_key for src in m.columns.values()))
    missing = [src for src in closest.columns.values() if src.lower() not in by_key]
    present = [src for src in closest.wanted().values() if src.lower() in by_key]
    known = "; ".join(m.describe() for m in mappings)
    raise SourceFormatError(
        f"{file_name}: header not recognised; closest format {closest.name} is missing column"
        f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}; "
        f"the header has {len(header)} column{'s' if len(header) != 1 else ''}, "
        f"{len(present)} of them {closest.name}'s; formats known: {known}"
    )


@dataclass(frozen=True)
class Category:
    """A categorical column of a customer table and, when declared, the values it may hold."""

    column: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomerMapping:
    """A table with one row per customer: which columns give the id, R/F/M, demographics, other numeric
    features and categories, and how the features are clustered by default.

    A sum of columns (frequency as the sum of purchase counts, spend as the sum of spend columns) is a
    list. Without an id column, a customer's id is a hash of their row, stable while the row is.
    """

    name: str
    customer_id: str | None
    optional: dict[str, str] = field(default_factory=dict)
    recency_days: str | None = None
    last_purchase: str | None = None
    frequency: tuple[str, ...] = ()
    monetary: tuple[str, ...] = ()
    features: dict[str, tuple[str, ...]] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    model_features: tuple[str, ...] = ("recency_days", "frequency", "monetary")
    log_transform: bool = True
    outliers: str = "cap"
    description: str = ""
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str = "."
    date_formats: tuple[str, ...] = ()
    as_of: str | None = None
    oldest_age: int = 100
    personal_customer_id: bool = False
    source: Path | None = None

    @property
    def has_rfm(self) -> bool:
        return bool((self.recency_days or self.last_purchase) and self.frequency and self.monetary)

    @property
    def columns(self) -> dict[str, str]:
        """The columns a header must have for this mapping to be its format (each source column once)."""
        required = {"customer_id": self.customer_id} if self.customer_id else {}
        for name, value in (("recency_days", self.recency_days), ("last_purchase", self.last_purchase)):
            if value:
                required[name] = value
        for name, sources in (
            *(("frequency", self.frequency), ("monetary", self.monetary)),
            *self.features.items(),
        ):
            for i, source in enumerate(sources):
                required[f"{name}#{i}"] = source
        for name, category in self.categories.items():
            required[name] = category.column
        return required

    def wanted(self) -> dict[str, str]:
        return self.columns | self.optional

    def describe(self) -> str:
        return f"{self.name} (one row per customer: {', '.join(dict.fromkeys(self.columns.values()))})"


def parse_customer_mapping(path: Path, raw: dict, name: str) -> CustomerMapping:
    """Check the sections of a customer table's mapping (grain = "customers")."""
    columns, optional, rfm = raw.get("columns", {}), raw.get("optional", {}), raw.get("rfm", {})
    model, dates, rules = raw.get("model", {}), raw.get("dates", {}), raw.get("rules", {})
    features = {
        key: _strings(path, f"[features] {key}", value) for key, value in raw.get("features", {}).items()
    }
    categories = {}
    for key, value in raw.get("categories", {}).items():
        if isinstance(value, str):
            categories[key] = Category(value)
        elif isinstance(value, dict) and set(value) <= {"column", "values"} and "column" in value:
            categories[key] = Category(
                _text(path, f"[categories] {key}.column", value["column"]),
                _strings(path, f"[categories] {key}.values", value.get("values", [])),
            )
        else:
            raise _fail(
                path, f"[categories] {key}", 'expected a column, or { column = "...", values = [...] }'
            )
    clashing = [key for key in (*features, *categories) if key in RESERVED or not key.isidentifier()]
    if clashing:
        raise _fail(
            path, "[features]/[categories]", f"names must be new identifiers, not {', '.join(clashing)}"
        )
    rfm_given = [key for key in ("frequency", "monetary") if key in rfm]
    if rfm and (len(rfm_given) < 2 or not ({"recency_days", "last_purchase"} & set(rfm))):
        raise _fail(path, "[rfm]", "name recency_days (or last_purchase), frequency and monetary, or none")
    if not rfm and not features:
        raise _fail(path, "[features]", "a customer table needs [rfm] or at least one of [features]")
    outliers = model.get("outliers", "cap")
    if outliers not in ("cap", "keep"):
        raise _fail(path, "[model] outliers", f"expected 'cap' or 'keep', got {outliers!r}")
    default_features = ("recency_days", "frequency", "monetary") if rfm else tuple(features)
    model_features = _strings(path, "[model] features", model.get("features", list(default_features)))
    known = {*features, *(CUSTOMER_SECTIONS["rfm"] - {"last_purchase"} if rfm else ())}
    unknown = [f for f in model_features if f not in known]
    if unknown:
        raise _fail(path, "[model] features", f"not features of this table: {', '.join(unknown)}")
    decimal = raw.get("numbers", {}).get("decimal", ".")
    if decimal not in (".", ","):
        raise _fail(path, "[numbers] decimal", f"expected '.' or ',', got {decimal!r}")
    try:
        oldest_age = int(rules.get("oldest_age", 100))
        as_of = dt.date.fromisoformat(str(dates["as_of"])).isoformat() if "as_of" in dates else None
    except (TypeError, ValueError) as error:
        raise _fail(
            path, "[dates] as_of / [rules] oldest_age", f"expected an ISO date and a whole age: {error}"
        ) from None
    return CustomerMapping(
        name=name,
        description=raw.get("description", ""),
        customer_id=_text(path, "[columns] customer_id", columns["customer_id"])
        if "customer_id" in columns
        else None,
        optional={k: _text(path, f"[optional] {k}", v) for k, v in optional.items()},
        recency_days=rfm.get("recency_days"),
        last_purchase=rfm.get("last_purchase"),
        frequency=_strings(path, "[rfm] frequency", rfm.get("frequency", [])),
        monetary=_strings(path, "[rfm] monetary", rfm.get("monetary", [])),
        features=features,
        categories=categories,
        model_features=model_features,
        log_transform=bool(model.get("log_transform", True)),
        outliers=outliers,
        delimiter=raw.get("read", {}).get("delimiter"),
        encoding=raw.get("read", {}).get("encoding"),
        decimal=decimal,
        date_formats=_strings(path, "[dates] formats", dates.get("formats", [])),
        as_of=as_of,
        oldest_age=oldest_age,
        personal_customer_id=bool(raw.get("customer", {}).get("personal", False)),
        source=path,
    )
