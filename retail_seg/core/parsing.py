"""How one mapping's raw text becomes typed values, as SQL: its numbers, its dates, its returns, its keys.

Each function returns a SQL expression over the canonical raw columns. Values a mapping declares (a
date format, a currency sign) are written into the SQL as quoted literals; values a rule compares with
(prefixes, codes, statuses) are bound parameters, named in `mapping_parameters`.
"""

from __future__ import annotations

import re

from retail_seg.core.mappings import Mapping

# Dates as exports without a declared format write them; ISO is tried first by a plain cast.
# A line's invoice (order) number from its text; a blank one is no number, as an empty one is.
INVOICE_NO = "nullif(trim(invoice_no), '')"

DEFAULT_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%m/%d/%Y")


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def literal_list(values: list[str]) -> str:
    """A list of text values as a DuckDB list literal."""
    return "[" + ", ".join(literal(v) for v in values) + "]"


def _text_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


def number_sql(column: str, mapping: Mapping) -> str:
    """A number as the mapping writes it (currency signs, thousands separators, a decimal comma), as
    DOUBLE; NULL where it is not one."""
    text = f"trim({column})"
    if mapping.strip:
        signs = "[" + "".join(re.escape(c) for c in mapping.strip) + "]"
        text = f"regexp_replace({text}, {literal(signs)}, '', 'g')"
    if mapping.thousands:
        text = f"replace({text}, {literal(mapping.thousands)}, '')"
    if mapping.decimal == ",":
        text = f"replace({text}, ',', '.')"
    return f"try_cast({text} AS DOUBLE)"


def date_sql(column: str, mapping: Mapping) -> str:
    """A date or timestamp as the mapping writes it, as TIMESTAMP (UTC where the text carries an offset)."""
    text = f"trim({column})"
    iso = f"try_cast({text} AS TIMESTAMP)"
    formats = mapping.date_formats or DEFAULT_DATE_FORMATS
    zoned = [f for f in formats if "%z" in f or "%Z" in f]
    naive = [f for f in formats if f not in zoned]
    parsed = []
    if zoned:
        parsed.append(f"timezone('UTC', try_strptime({text}, {_text_list(zoned)}))")
    if naive:
        parsed.append(f"try_strptime({text}, {_text_list(naive)})")
    # An ISO date is tried first (a plain cast, far cheaper than a failed strptime per format): no day- or
    # month-first text casts as a timestamp. Where a declared format starts with the year, the cast could
    # read it otherwise (drop an offset it carries), so the declared formats go first.
    year_first = any(f.lstrip().startswith("%Y") for f in mapping.date_formats)
    ordered = [*parsed, iso] if year_first else [iso, *parsed]
    return f"coalesce({', '.join(ordered)})"


def customer_key_sql(column: str) -> str:
    """The customer id as a key: spreadsheets turn ids into floats ("17850.0"), the id is the text before."""
    return f"nullif(regexp_replace(trim({column}), '\\.0+$', ''), '')"


def hashed_key_sql(column: str) -> str:
    """A personal customer key (an email) as a keyed hash: the same person, the same key, and no address
    stored. `$id_key` is the secret; without it the hash could be reversed by trying addresses."""
    key = customer_key_sql(column)
    return f"CASE WHEN {key} IS NOT NULL THEN 'h' || left(sha256($id_key || lower({key})), 20) END"


def is_return_sql(mapping: Mapping) -> str:
    """Whether a typed line is a return or cancellation, by the marks this mapping declares."""
    marks = []
    if mapping.negative_quantity_is_return:
        marks.append("quantity_num < 0")
    if mapping.return_prefix:
        marks.append(f"starts_with(upper(trim(invoice_no)), {literal(mapping.return_prefix.upper())})")
    if mapping.return_statuses:
        marks.append(f"list_contains({_text_list(mapping.return_statuses)}, lower(trim(status)))")
    return "(" + " OR ".join(marks) + ")" if marks else "false"


def parsed_sql(mapping: Mapping) -> dict[str, str]:
    """The typed values of a raw line, by name: customer_key, invoice_ts, quantity_num, unit_price_exact,
    line_total_exact (NULL unless the mapping gives line totals) and is_return.

    Money is exact (DECIMAL), so returns that cancel a purchase net to zero, not to 1e-14. A mapping that
    gives line totals gets its unit price from them. Amounts are in the line's own currency here; staging
    converts them, and makes a return's quantity and total negative whatever sign the export wrote.
    """
    quantity = number_sql("quantity", mapping)
    if "line_total" in mapping.columns:
        total = f"try_cast({number_sql('line_total', mapping)} AS DECIMAL(18, 4))"
        per_unit = f"CAST(abs({total}) / abs({quantity}) AS DECIMAL(18, 4))"
        price = f"CASE WHEN {quantity} <> 0 THEN {per_unit} ELSE abs({total}) END"
    else:
        total = "CAST(NULL AS DECIMAL(18, 4))"
        price = f"try_cast({number_sql('unit_price', mapping)} AS DECIMAL(18, 4))"
    return {
        "customer_key": customer_key_sql("customer_id"),
        "invoice_ts": date_sql("invoice_date", mapping),
        "quantity_num": quantity,
        "unit_price_exact": price,
        "line_total_exact": total,
    }


def mapping_parameters(mapping: Mapping) -> dict[str, object]:
    """The bound parameters the rejection rules read: the mapping's adjustment and non-product codes, and
    the statuses that cancel an order."""
    return {
        "adjustment_prefix": mapping.adjustment_prefix.upper() if mapping.adjustment_prefix else None,
        "non_product_codes": list(mapping.non_product_codes),
        "non_product_prefixes": list(mapping.non_product_prefixes),
        "cancelled_statuses": list(mapping.cancelled_statuses),
    }
