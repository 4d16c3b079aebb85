"""Customer tables: a CRM export with one row per customer, taken into the history like a file of lines.

A load of a customer table types each row by its mapping (`mappings.CustomerMapping`) and judges it by
named rules. A row that breaks a rule is rejected with it; a value that cannot be right is set aside
(flagged) and the row kept, so a customer is never lost to one odd field:

    rejected   missing_customer_id, value_not_a_number, negative_count, negative_spend,
               duplicate_customer_id (every row of an id after its first)
    flagged    implausible_age (older than the mapping's oldest_age, or not yet born; the age is left
               empty), unknown_category (a value outside the category's declared values; left empty)

The load writes `customers.parquet` (typed), `rejected.parquet` (rule and the row as the file had it)
and `flags.parquet` (rule, column and value) into its folder of the lake. The history of customer
tables is a set of snapshots: a customer's row is the one in the latest table that lists them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_seg.core.cleaning import _gender_sql
from retail_seg.core.expectations import ColumnRule, GateResult, Outcome, check_columns, fact
from retail_seg.core.mappings import Category, CustomerMapping, SourceFormatError, detect_mapping
from retail_seg.core.parsing import customer_key_sql, hashed_key_sql, literal, literal_list
from retail_seg.core.tables import CUSTOMER_FLAGS, CUSTOMER_TABLE, RAW_LOADS
from retail_seg.core.warehouse import exists

TABLE_ROWS = "customers.parquet"
FLAGS = "flags.parquet"
# The columns every typed table stores (and `age`, its checked age); the others are its declared
# features (numbers) and categories (text).
STORED = (
    "load_id",
    "source_row",
    "customer_id",
    "as_of",
    "recency_days",
    "last_purchase",
    "frequency",
    "monetary",
    "first_purchase",
    "gender",
    "country",
)
FIXED = (*STORED, "age")


def _reader(path: Path, delimiter: str | None) -> str:
    quoted = literal(str(path))
    if path.suffix.lower() == ".parquet":
        return f"(SELECT * FROM read_parquet({quoted}))"
    options = f", delim = {literal(delimiter)}" if delimiter else ""
    # Every line is a row: no comment mark for the sniffer to guess (`sources._reader_sql`).
    return f"read_csv({quoted}, header = true, all_varchar = true, comment = ''{options})"


def recognise(
    conn: duckdb.DuckDBPyConnection, path: Path, mappings: tuple[CustomerMapping, ...]
) -> tuple[CustomerMapping, dict[str, str]] | None:
    """The customer mapping whose columns the file's header has, with the header's spelling of each; None
    when the file is not a customer table (then it is read as lines)."""
    if not mappings or path.suffix.lower() not in (".csv", ".txt", ".tsv", ".parquet"):
        return None
    for delimiter in (None, *dict.fromkeys(m.delimiter for m in mappings if m.delimiter)):
        try:
            header = [
                row[0]
                for row in conn.execute(f"DESCRIBE SELECT * FROM {_reader(path, delimiter)}").fetchall()
            ]
            mapping, found = detect_mapping(path.name, header, mappings)
        except (duckdb.Error, SourceFormatError):
            continue
        if delimiter in (None, mapping.delimiter):
            return mapping, found
    return None


def _number(column: str, mapping: CustomerMapping) -> str:
    text = f"nullif(trim(CAST({column} AS VARCHAR)), '')"
    if mapping.decimal == ",":
        text = f"replace(replace({text}, '.', ''), ',', '.')"
    # "inf" and "nan" parse as numbers but are none: a value that is not finite does not parse.
    return f"(CASE WHEN isfinite(TRY_CAST({text} AS DOUBLE)) THEN TRY_CAST({text} AS DOUBLE) END)"


def _given(column: str) -> str:
    return f"(nullif(trim(CAST({column} AS VARCHAR)), '') IS NOT NULL)"


def _whole(number: str, kind: str = "BIGINT") -> str:
    """A number as a whole one of `kind`, empty when it does not fit."""
    return f"TRY_CAST(round({number}) AS {kind})"


def _date(column: str, mapping: CustomerMapping) -> str:
    text = f"nullif(trim(CAST({column} AS VARCHAR)), '')"
    parsed = [f"try_strptime({text}, {literal(f)})" for f in mapping.date_formats]
    return f"CAST(coalesce({', '.join([*parsed, f'TRY_CAST({text} AS TIMESTAMP)'])}) AS TIMESTAMP)"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sum(sources: tuple[str, ...], found: dict[str, str], key: str, mapping: CustomerMapping) -> str:
    """The sum of a feature's source columns (empty when any is empty)."""
    return " + ".join(_number(_quoted(found[f"{key}#{i}"]), mapping) for i in range(len(sources)))


@dataclass(frozen=True)
class TableLoad:
    """What a load of a customer table found: rows, clean, rejected and flagged, and the gates' verdicts."""

    rows: int
    clean: int
    rejected: int
    flagged: int
    raw_gate: GateResult
    staging_gate: GateResult


def _category(column: str, category: Category) -> str:
    """A category's value, in its declared spelling when it is one of them whatever its case."""
    value = f"nullif(trim(CAST({column} AS VARCHAR)), '')"
    if not category.values:
        return value
    spelled = " ".join(f"WHEN {literal(v.lower())} THEN {literal(v)}" for v in category.values)
    return f"(CASE lower({value}) {spelled} ELSE {value} END)"


def typed_sql(
    mapping: CustomerMapping, found: dict[str, str], header: list[str], load_id: str, as_of: dt.date
) -> str:
    """Every row typed by the mapping, with the rule it breaks (or NULL) and the flags it raises."""
    column = {key: _quoted(source) for key, source in found.items()}
    raw_values = "to_json(read)"
    if mapping.personal_customer_id and "customer_id" in column:
        # The row as the file had it, but a personal key (an email) never reaches the warehouse.
        raw_values = f"json_merge_patch(to_json(read), json_object({literal(found['customer_id'])}, NULL))"
    if mapping.customer_id:
        key = customer_key_sql(f"CAST({column['customer_id']} AS VARCHAR)")
        if mapping.personal_customer_id:
            key = hashed_key_sql(f"CAST({column['customer_id']} AS VARCHAR)")
    else:
        # No id column: the row's own values, hashed, so the same row gets the same id in every table.
        values = ", ".join(f"coalesce(CAST({_quoted(h)} AS VARCHAR), '')" for h in header)
        key = f"'r' || left(sha256(concat_ws(chr(31), {values})), 16)"
    typed = {
        "customer_id": key,
        "recency_days": _whole(_number(column["recency_days"], mapping), "INTEGER")
        if "recency_days" in column
        else "CAST(NULL AS INTEGER)",
        "last_purchase": _date(column["last_purchase"], mapping)
        if "last_purchase" in column
        else "CAST(NULL AS TIMESTAMP)",
        "frequency": _whole(_sum(mapping.frequency, found, "frequency", mapping))
        if mapping.frequency
        else "CAST(NULL AS BIGINT)",
        "monetary": f"CAST(round({_sum(mapping.monetary, found, 'monetary', mapping)}, 2) AS DOUBLE)"
        if mapping.monetary
        else "CAST(NULL AS DOUBLE)",
        "first_purchase": _date(column["first_purchase"], mapping)
        if "first_purchase" in column
        else "CAST(NULL AS TIMESTAMP)",
        "stated_age": (
            _whole(_number(column["age"], mapping), "INTEGER")
            if "age" in column
            else f"{as_of.year} - {_whole(_number(column['birth_year'], mapping), 'INTEGER')}"
            if "birth_year" in column
            else "CAST(NULL AS INTEGER)"
        ),
        "gender": _gender_sql(f"CAST({column['gender']} AS VARCHAR)")
        if "gender" in column
        else "CAST(NULL AS VARCHAR)",
        "country": f"nullif(trim(CAST({column['country']} AS VARCHAR)), '')"
        if "country" in column
        else "CAST(NULL AS VARCHAR)",
        **{name: _sum(sources, found, name, mapping) for name, sources in mapping.features.items()},
        **{name: _category(column[name], category) for name, category in mapping.categories.items()},
    }
    # A value given that does not type: not a number (or not a whole one that fits), not a date.
    numbers = ("recency_days", "frequency", "monetary", "age", "birth_year", *mapping.features)
    given = {key: _given(source) for key, source in column.items() if key.split("#")[0] in numbers}
    failed = [f"({test} AND {_number(column[key], mapping)} IS NULL)" for key, test in given.items()]
    for name, typed_as in (
        ("recency_days", "recency_days"),
        ("frequency", "frequency"),
        ("age", "stated_age"),
    ):
        sources = [
            given[k] for k in given if k.split("#")[0] in (name, "birth_year" if name == "age" else name)
        ]
        if sources:
            failed.append(f"(({' OR '.join(sources)}) AND ({typed[typed_as]}) IS NULL)")
    for name in ("last_purchase", "first_purchase"):
        if name in column:
            failed.append(f"({_given(column[name])} AND {typed[name]} IS NULL)")
    unparseable = " OR ".join(failed) or "false"
    # A table that states R/F/M states it for every customer: a row without one cannot be featured.
    recency = "recency_days" if mapping.recency_days else "last_purchase"
    missing = f"({recency} IS NULL OR frequency IS NULL OR monetary IS NULL)" if mapping.has_rfm else "false"
    spend = [_number(column[f"monetary#{i}"], mapping) for i in range(len(mapping.monetary))]
    selected = ",\n".join(f"{sql} AS {_quoted(name)}" for name, sql in typed.items())
    negative_spend = " OR ".join(f"coalesce({s} < 0, false)" for s in spend) or "false"
    return f"""
        WITH read AS (SELECT rowid + 1 AS source_row, * FROM _customer_table_text),
        typed AS (
            SELECT source_row, {selected},
                   {unparseable} AS unparseable, {negative_spend} AS negative_spend,
                   {raw_values} AS raw_values
            FROM read
        ),
        judged AS (
            SELECT *, CASE
                WHEN customer_id IS NULL THEN 'missing_customer_id'
                WHEN unparseable THEN 'value_not_a_number'
                WHEN {missing} THEN 'missing_rfm_value'
                WHEN coalesce(recency_days < 0 OR frequency < 0, false) THEN 'negative_count'
                WHEN negative_spend OR coalesce(monetary < 0, false) THEN 'negative_spend'
            END AS broken
            FROM typed
        )
        SELECT *, CASE WHEN broken IS NULL AND row_number() OVER (
                           PARTITION BY customer_id, broken IS NULL ORDER BY source_row) > 1
                       THEN 'duplicate_customer_id' ELSE broken END AS rule,
               {literal(load_id)} AS load_id, DATE {literal(as_of.isoformat())} AS as_of
        FROM judged
    """


def load_customer_table(
    conn: duckdb.DuckDBPyConnection,
    readable: Path,
    source_name: str,
    mapping: CustomerMapping,
    found: dict[str, str],
    load_id: str,
    folder: Path,
    run_date: dt.date,
    id_key: str | None,
    max_missing_customer_share: float = 0.5,
    max_unparseable_share: float = 0.05,
    max_rejected_share: float = 0.75,
) -> TableLoad:
    """Type and judge a customer table, write its clean rows, rejections and flags into `folder`, and
    judge the load by its raw and staging gates (written either way; the caller accepts or refuses)."""
    conn.execute(
        "CREATE OR REPLACE TABLE _customer_table_text AS "
        f"SELECT * FROM {_reader(readable, mapping.delimiter)}"
    )
    header = [row[0] for row in conn.execute("DESCRIBE _customer_table_text").fetchall()]
    as_of = dt.date.fromisoformat(mapping.as_of) if mapping.as_of else run_date
    conn.execute(
        "CREATE OR REPLACE TABLE _customer_table AS " + typed_sql(mapping, found, header, load_id, as_of),
        {"id_key": id_key} if mapping.personal_customer_id else {},
    )
    rows, missing, unparseable = conn.execute(
        "SELECT count(*), count(*) FILTER (rule = 'missing_customer_id'), count(*) FILTER (unparseable) "
        "FROM _customer_table"
    ).fetchone()
    raw = GateResult(
        "raw",
        source_name,
        (
            Outcome("the file is readable as a known export format", f"{mapping.describe()}", True, "duckdb"),
            fact(
                f"at most {max_missing_customer_share:.0%} of rows without a customer id",
                f"{missing:,} of {rows:,}",
                rows > 0 and missing <= max_missing_customer_share * rows,
            ),
            fact(
                f"at most {max_unparseable_share:.0%} of rows with a number that does not parse",
                f"{unparseable:,} of {rows:,}",
                unparseable <= max_unparseable_share * rows,
            ),
        ),
    )
    features = [*mapping.features]
    categories = [*mapping.categories]
    kept = ", ".join(_quoted(c) for c in (*STORED, *features, *categories))
    oldest = int(mapping.oldest_age)
    allowed = {
        name: [v.lower() for v in category.values]
        for name, category in mapping.categories.items()
        if category.values
    }
    unknown = {
        name: f"lower({_quoted(name)}) NOT IN (SELECT unnest({literal_list(values)}))"
        for name, values in allowed.items()
    }
    cleaned_categories = ", ".join(
        f"CASE WHEN {test} THEN NULL ELSE {_quoted(name)} END AS {_quoted(name)}"
        for name, test in unknown.items()
    )
    replace = f"REPLACE ({cleaned_categories})" if cleaned_categories else ""
    conn.execute(
        f"""COPY (SELECT * EXCLUDE (stated_age) {replace},
                         CASE WHEN stated_age BETWEEN 0 AND {oldest} THEN stated_age END AS age
                  FROM (SELECT {kept}, stated_age FROM _customer_table WHERE rule IS NULL)
                  ORDER BY source_row)
            TO {literal(str(folder / TABLE_ROWS))} (FORMAT parquet)"""
    )
    conn.execute(
        f"""COPY (SELECT load_id, {literal(source_name)} AS source_file, source_row, rule,
                         CAST(customer_id AS VARCHAR) AS customer_id,
                         CAST(raw_values AS VARCHAR) AS raw_values
                  FROM _customer_table WHERE rule IS NOT NULL ORDER BY source_row)
            TO {literal(str(folder / "rejected.parquet"))} (FORMAT parquet)"""
    )
    flag_parts = [
        f"""SELECT load_id, source_row, customer_id, 'implausible_age' AS rule, 'age' AS "column",
                   CAST(stated_age AS VARCHAR) AS value,
                   'age ' || stated_age || ' at ' || as_of || ' is outside 0..{oldest}: left empty' AS detail
            FROM _customer_table
            WHERE rule IS NULL AND stated_age IS NOT NULL AND stated_age NOT BETWEEN 0 AND {oldest}"""
    ]
    for name, test in unknown.items():
        flag_parts.append(
            f"""SELECT load_id, source_row, customer_id, 'unknown_category', {literal(name)}, {_quoted(name)},
                       {literal(f"not one of {', '.join(mapping.categories[name].values)}: left empty")}
                FROM _customer_table WHERE rule IS NULL AND {_quoted(name)} IS NOT NULL AND {test}"""
        )
    conn.execute(
        f"COPY ({' UNION ALL '.join(flag_parts)} ORDER BY source_row) "
        f"TO {literal(str(folder / FLAGS))} (FORMAT parquet)"
    )
    clean, rejected = conn.execute(
        "SELECT count(*) FILTER (rule IS NULL), count(*) FILTER (rule IS NOT NULL) FROM _customer_table"
    ).fetchone()
    (flagged,) = conn.execute(f"SELECT count(*) FROM read_parquet({literal(str(folder / FLAGS))})").fetchone()
    staging = staging_gate(conn, folder / TABLE_ROWS, rows, rejected, max_rejected_share)
    return TableLoad(rows, clean, rejected, flagged, raw, staging)


def staging_gate(
    conn: duckdb.DuckDBPyConnection, table_rows: Path, rows: int, rejected: int, max_rejected_share: float
) -> GateResult:
    """A customer table's staging gate: one row per id, counts and spend never negative, not too much
    rejected. Column rules run in Great Expectations, as every gate's do."""
    source = f"read_parquet({literal(str(table_rows))})"
    (clean, ids) = conn.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {source}").fetchone()
    outcomes = [
        fact("one row per customer id", f"{clean:,} rows for {ids:,} ids", clean == ids),
        fact(
            f"at most {max_rejected_share:.0%} of rows rejected",
            f"{rejected:,} of {rows:,} ({rejected / max(rows, 1):.1%})",
            rows > 0 and rejected <= max_rejected_share * rows,
        ),
    ]
    rules = [
        ColumnRule("ExpectColumnValuesToNotBeNull", "customer_id", "every row has a customer id"),
        ColumnRule(
            "ExpectColumnValuesToBeBetween", "recency_days", "recency is zero or more days", {"min_value": 0}
        ),
        ColumnRule(
            "ExpectColumnValuesToBeBetween", "frequency", "purchases are zero or more", {"min_value": 0}
        ),
        ColumnRule("ExpectColumnValuesToBeBetween", "monetary", "spend is zero or more", {"min_value": 0}),
    ]
    if clean:
        outcomes += check_columns(
            conn, f"SELECT customer_id, recency_days, frequency, monetary FROM {source}", rules
        )
    return GateResult("staging", str(table_rows.parent.name), tuple(outcomes))


def build_customer_table(
    conn: duckdb.DuckDBPyConnection, tables: list[tuple[Path, Path, int]], new: set[str] = frozenset()
) -> int:
    """`staging.customer_table` and `staging.customer_flags` over the accepted tables (rows file, flags
    file, rank in the order accepted): each customer's row from the latest table that lists them (by the
    table's own date, then the order accepted). Returns how many customers a table of `new` (load ids
    new to the history) took over from an earlier one."""
    if not tables:
        conn.execute(
            f"CREATE OR REPLACE VIEW {CUSTOMER_TABLE} AS SELECT NULL::VARCHAR AS customer_id WHERE false"
        )
        conn.execute(
            f"CREATE OR REPLACE VIEW {CUSTOMER_FLAGS} AS SELECT NULL::VARCHAR AS load_id, "
            "NULL::BIGINT AS source_row, NULL::VARCHAR AS customer_id, NULL::VARCHAR AS rule, "
            'NULL::VARCHAR AS "column", NULL::VARCHAR AS value, NULL::VARCHAR AS detail WHERE false'
        )
        return 0
    files = literal_list([str(rows) for rows, _, _ in tables])
    ranks = ", ".join(f"({literal(rows.parent.name)}, {rank})" for rows, _, rank in tables)
    conn.execute(
        f"""CREATE OR REPLACE VIEW {CUSTOMER_TABLE} AS
            SELECT * EXCLUDE (rank, pick) FROM (
                SELECT t.*, r.rank,
                       row_number() OVER (
                           PARTITION BY t.customer_id ORDER BY t.as_of DESC, r.rank DESC
                       ) AS pick
                FROM read_parquet({files}, union_by_name = true) t
                JOIN (VALUES {ranks}) r(folder, rank) ON t.load_id = r.folder
            ) WHERE pick = 1"""
    )
    flags = literal_list([str(f) for _, f, _ in tables])
    conn.execute(
        f"""CREATE OR REPLACE VIEW {CUSTOMER_FLAGS} AS
            SELECT f.* FROM read_parquet({flags}, union_by_name = true) f
            SEMI JOIN {CUSTOMER_TABLE} t USING (load_id, source_row)"""
    )
    (replaced,) = conn.execute(
        f"""SELECT count(*) FROM {CUSTOMER_TABLE} t
            WHERE t.load_id IN (SELECT unnest(?)) AND t.customer_id IN (
                SELECT customer_id FROM read_parquet({files}, union_by_name = true)
                GROUP BY customer_id HAVING count(*) > 1
            )""",
        [sorted(new)],
    ).fetchone()
    return int(replaced)


def history_grain(conn: duckdb.DuckDBPyConnection) -> str:
    """What the published history is made of: 'customers' when it holds customer tables, else
    'transactions'."""
    if exists(conn, CUSTOMER_TABLE) and conn.execute(f"SELECT EXISTS (FROM {CUSTOMER_TABLE})").fetchone()[0]:
        return "customers"
    return "transactions"


def declared(conn: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    """The history's declared numeric features and categories, in the table's order."""
    rows = conn.execute(f"DESCRIBE {CUSTOMER_TABLE}").fetchall()
    features = [name for name, kind, *_ in rows if name not in FIXED and kind == "DOUBLE"]
    categories = [name for name, kind, *_ in rows if name not in FIXED and kind == "VARCHAR"]
    return features, categories


def has_rfm(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether the history's tables give recency, frequency and spend."""
    (known,) = conn.execute(
        f"SELECT count(*) FILTER (frequency IS NOT NULL AND monetary IS NOT NULL "
        f"AND (recency_days IS NOT NULL OR last_purchase IS NOT NULL)) FROM {CUSTOMER_TABLE}"
    ).fetchone()
    return known > 0


def customers_sql(conn: duckdb.DuckDBPyConnection) -> str:
    """`staging.customers` from the table: demographics, the declared categories, first and last seen."""
    _, categories = declared(conn)
    extra = "".join(f", {_quoted(c)}" for c in categories)
    return f"""
        SELECT customer_id, age, gender, country,
               first_purchase AS first_seen,
               coalesce(last_purchase, CAST(as_of AS TIMESTAMP) - to_days(recency_days)) AS last_seen,
               CAST(NULL AS BIGINT) AS lines, CAST(NULL AS BIGINT) AS distinct_products{extra}
        FROM {CUSTOMER_TABLE}
        ORDER BY customer_id
    """


@dataclass(frozen=True)
class ModelDefaults:
    """What the source's mapping says suits its data: the features to cluster, log or not, cap or not."""

    features: tuple[str, ...] = ("recency_days", "frequency", "monetary")
    log_transform: bool = True
    outliers: str = "cap"
    mapping: str = ""


def model_defaults(conn: duckdb.DuckDBPyConnection, tables: tuple[CustomerMapping, ...]) -> ModelDefaults:
    """The clustering defaults of the history's source: its customer table's mapping's, else R/F/M logged."""
    if history_grain(conn) != "customers" or not exists(conn, RAW_LOADS):
        return ModelDefaults()
    rows = conn.execute(
        f"SELECT mapping FROM {RAW_LOADS} ORDER BY loaded_at DESC, load_id DESC LIMIT 1"
    ).fetchall()
    named: dict[str, CustomerMapping] = {}
    for mapping in tables:  # the user's first: one of theirs stands in for a built-in of its name
        named.setdefault(mapping.name, mapping)
    mapping = named.get(rows[0][0]) if rows else None
    if mapping is None:
        return ModelDefaults()
    return ModelDefaults(mapping.model_features, mapping.log_transform, mapping.outliers, mapping.name)


class AsOfTooEarly(ValueError):
    """Features asked for before the date a customer table states its recency at."""


def per_customer_sql() -> str:
    """The per-customer sums the feature build derives every feature from, as a table states them: the
    last purchase is `recency_days` before the table's own as-of date (unless the table gives the date),
    so the features measured at that date are the table's recency, frequency and spend exactly."""
    return f"""
        SELECT customer_id,
               coalesce(last_purchase, CAST(as_of AS TIMESTAMP) - to_days(recency_days)) AS last_purchase,
               first_purchase,
               frequency,
               monetary,
               monetary AS purchased,
               0.0 AS returned,
               CAST($as_of AS DATE) AS as_of
        FROM {CUSTOMER_TABLE}
        WHERE frequency IS NOT NULL AND monetary IS NOT NULL
    """


def features_sql(conn: duckdb.DuckDBPyConnection, rfm_features_sql: str | None) -> str:
    """The customer features of a table: R/F/M and what derives from them (`rfm_features_sql`, over
    `_per_customer`) where the table has them, every customer with empty R/F/M otherwise; and the
    declared features beside them."""
    features, _ = declared(conn)
    extra = "".join(f", t.{_quoted(f)}" for f in features)
    if rfm_features_sql is not None:
        return f"""
            SELECT s.*{extra} FROM ({rfm_features_sql}) s
            JOIN {CUSTOMER_TABLE} t USING (customer_id) ORDER BY customer_id
        """
    return f"""
        SELECT customer_id, CAST(NULL AS BIGINT) AS recency_days, CAST(NULL AS BIGINT) AS frequency,
               CAST(NULL AS DOUBLE) AS monetary, CAST(NULL AS BIGINT) AS tenure_days,
               CAST(NULL AS DOUBLE) AS avg_order_value, CAST(NULL AS DOUBLE) AS mean_days_between,
               CAST(NULL AS DOUBLE) AS return_rate, first_purchase, CAST(NULL AS TIMESTAMP) AS last_purchase,
               CAST($as_of AS DATE) AS as_of, CAST(NULL AS INTEGER) AS r_score,
               CAST(NULL AS INTEGER) AS f_score,
               CAST(NULL AS INTEGER) AS m_score, CAST(NULL AS VARCHAR) AS rfm_segment{extra}
        FROM {CUSTOMER_TABLE} t ORDER BY customer_id
    """
