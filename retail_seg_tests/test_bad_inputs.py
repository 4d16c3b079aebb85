"""The bad-input catalogue: what real exports throw at the pipeline, and exactly what happens to each.

Every case starts from a warehouse holding a good run. A file refused at its load (raw or staging gate)
fails that load; the publication over the accepted history goes ahead and says so, and every staging and
mart table holds what it held. A file refused later (features) publishes nothing: every table is
unchanged. A case that must load asserts which rows were rejected for which rule.
"""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from retail_seg.core.lake import Lake
from retail_seg.core.synthetic import write_synthetic
from retail_seg.core.warehouse import published_checksums
from retail_seg_tests.pipeline import ALL_ASSETS, folder_digest, materialize_all, query
from retail_seg_tests.runs import published_content


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A warehouse and report after a good run on a small synthetic export, and that export as text."""
    workdir = tmp_path_factory.mktemp("good")
    source, _ = write_synthetic(workdir / "source", customers=400, seed=5)
    result = materialize_all(source, workdir)
    assert result.success
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        checksums = published_checksums(conn)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    return workdir, checksums, frame, folder_digest(workdir / "reports"), _derived(workdir)


# Marts that compare a run with the one before it, so a second run over the same history changes them.
SINCE_THE_PREVIOUS_RUN = (
    "marts.segment_migration",
    "marts.fallen_from_high_value",
    "marts.segment_identity",
    "marts.segment_drift",
)


def _derived(workdir: Path) -> dict[str, tuple]:
    """What the history and its marts hold, run ids and timestamps aside."""
    return {
        table: content
        for table, content in published_content(workdir).items()
        if table.startswith(("staging.", "marts.")) and table not in SINCE_THE_PREVIOUS_RUN
    }


@pytest.fixture
def case(good, tmp_path):
    """Run the pipeline on a bad file against a copy of the good warehouse and report. With `history`, the
    good run's loads come too and the file adds to them; without, the file is judged alone (the copy carries
    no loads)."""
    workdir = good[0]

    def run(path: Path, history: bool = False) -> tuple[dg.ExecuteInProcessResult, Path]:
        shutil.copy(workdir / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
        shutil.copytree(workdir / "reports", tmp_path / "reports", dirs_exist_ok=True)
        if history:
            shutil.copytree(workdir / LAKE, tmp_path / LAKE)
        return materialize_all(path, tmp_path), tmp_path

    return run


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _failed_checks(result) -> dict[str, str]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.description
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    }


def _checksums(workdir: Path) -> dict:
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        return published_checksums(conn)


# What a run refused at the features gate built before it, in the run's own copy of the warehouse, which
# is never published: the file's load (accepted into the history) and the staging layer over it.
UPSTREAM = {
    "features": {
        "raw_transactions",
        "clean_transactions",
        "rejected_rows",
        "transaction_history",
        "customers",
    },
}
LAKE = ".warehouse.lake"


def assert_load_refused(result, workdir, good, path: Path, gate: str, *words: str):
    """The file's load failed at `gate` saying `words`; the publication over the history went ahead, loud
    about it (the history's warning, `audit.load_events`), and the history and marts hold what they held."""
    assert result.success
    failed = _failed_checks(result)
    check = f"{gate}_gate"
    assert set(failed) == {check, "every_file_loaded"}
    for word in words:
        assert word in failed[check]
    assert f"{path} refused" in failed["every_file_loaded"]
    assert _derived(workdir) == good[4]
    assert Lake(workdir / "warehouse.duckdb").accepted() == Lake(good[0] / "warehouse.duckdb").accepted()
    [(source, run_id)] = query(
        workdir, "SELECT source_file, run_id FROM audit.load_events WHERE event = 'refused'"
    )
    assert source == str(path) and run_id == result.run_id  # recorded by the publication that met it


def assert_refused(result, workdir, good, gate: str, *words: str):
    """The run failed at `gate` saying `words`, and published nothing: every table and the report folder
    are exactly as the good run left them."""
    assert not result.success
    failed = _failed_checks(result)
    check = f"{gate}_gate"
    assert set(failed) == {check}
    for word in words:
        assert word in failed[check]
    assert _materialized(result) == UPSTREAM.get(gate, set())
    assert "marts.customer_segments" in good[1]
    assert _checksums(workdir) == good[1]
    assert folder_digest(workdir / "reports") == good[3]


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _rejected(workdir: Path) -> dict[int, str]:
    return dict(query(workdir, "SELECT source_row, rule FROM staging.rejected_rows"))


# Files that must be refused at the door ------------------------------------------------------------


def test_empty_file(case, good, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "empty.csv", "file is empty")


def test_header_only(case, good, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(good[2].columns) + "\n")
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "at least one transaction line", "0 lines")


def test_required_column_missing(case, good, tmp_path):
    path = _write(good[2].drop(columns="invoice_date"), tmp_path / "no_date.csv")
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "no_date.csv", "missing column 'invoice_date'")


def test_columns_renamed(case, good, tmp_path):
    renamed = good[2].rename(columns={"quantity": "Qty", "unit_price": "Price Each"})
    path = _write(renamed, tmp_path / "renamed.csv")
    result, workdir = case(path, history=True)
    assert_load_refused(
        result,
        workdir,
        good,
        path,
        "raw",
        "missing columns 'quantity', 'unit_price'",
        "the header has 11 columns, 9 of them canonical's",
    )


def test_text_in_a_whole_numeric_column(case, good, tmp_path):
    priced = good[2].assign(unit_price="£" + good[2]["unit_price"])
    path = _write(priced, tmp_path / "pounds.csv")
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "unit prices are numbers", "e.g. £")


def test_every_customer_id_missing(case, good, tmp_path):
    path = _write(good[2].assign(customer_id=""), tmp_path / "guests.csv")
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "lines have a customer id", "(100.00%)")


def test_european_export_with_decimal_commas(case, good, tmp_path):
    path = tmp_path / "semicolons.csv"
    good[2].assign(unit_price=good[2]["unit_price"].str.replace(".", ",")).to_csv(path, sep=";", index=False)
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "unit prices are numbers")


def test_unsupported_file_type(case, good, tmp_path):
    path = tmp_path / "export.json"
    path.write_text("[]")
    result, workdir = case(path, history=True)
    assert_load_refused(result, workdir, good, path, "raw", "export.json", "file type '.json' not supported")


# Files that load, but stop before the marts -------------------------------------------------------


def test_all_rows_cancelled(case, good, tmp_path):
    frame = good[2]
    cancelled = frame.assign(
        invoice_no="C" + frame["invoice_no"], quantity="-" + frame["quantity"].str.lstrip("-")
    )
    result, workdir = case(_write(cancelled, tmp_path / "cancelled.csv"))
    assert_refused(result, workdir, good, "features", "at least 3 customers", "0 customers")
    # Staging passed them all as returns, in the run's own copy: there was nothing bought to segment.
    [staged] = [
        e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "clean_transactions"
    ]
    assert 0 < staged <= len(cancelled)


def test_one_customer_only(case, good, tmp_path):
    frame = good[2]
    one = frame[frame["customer_id"] == frame.loc[frame["customer_id"] != "", "customer_id"].iloc[0]]
    result, workdir = case(_write(one, tmp_path / "one.csv"))
    assert_refused(result, workdir, good, "features", "at least 3 customers", "1 customers")


def test_two_digit_years_are_refused_at_the_staging_gate(case, good, tmp_path):
    """Dates that parse, but as the year 24: out of range, most lines rejected, the staging gate refuses,
    says which rule rejected them and which setting changes it, and keeps the refused lines."""
    frame = good[2]
    parsed = pd.to_datetime(frame["invoice_date"])
    two_digit = frame.assign(invoice_date=parsed.dt.strftime("%-m/%-d/%y %H:%M"))
    path = _write(two_digit, tmp_path / "two_digit_years.csv")
    result, workdir = case(path, history=True)
    attributable = int((frame["customer_id"] != "").sum())
    assert_load_refused(
        result,
        workdir,
        good,
        path,
        "staging",
        "at most 75% of lines rejected",
        "(100.0%)",
        "most: invoice_date_out_of_range ",
        "(change: load_rules earliest_date, run_date)",
    )
    [kept] = (workdir / ".warehouse.lake" / "refused").glob("two_digit_years.csv@*/rejected.parquet")
    with duckdb.connect() as conn:
        rules = dict(
            conn.execute(f"SELECT rule, count(*) FROM read_parquet('{kept}') GROUP BY rule").fetchall()
        )
    assert rules["invoice_date_out_of_range"] > 0.9 * attributable  # queryable after the refusal
    assert sum(rules.values()) == len(two_digit)
    # The refusal counts what it names: the lines kept for each of the rules that rejected most.
    counted = f"invoice_date_out_of_range {rules['invoice_date_out_of_range']:,} (change:"
    assert counted in _failed_checks(result)["staging_gate"]


# Files that load, with the bad lines rejected for their rule -----------------------------------------


def test_a_few_text_values_in_numeric_columns(case, tmp_path):
    rows = pd.DataFrame([_line(i, f"c{i % 7}") for i in range(60)]).astype(str)
    rows.loc[3, "quantity"] = "two"
    rows.loc[9, "unit_price"] = "N/A"
    result, workdir = case(_write(rows, tmp_path / "typos.csv"))
    assert result.success
    assert _rejected(workdir) == {4: "quantity_not_a_number", 10: "unit_price_not_a_number"}


def test_unparseable_and_future_dates(case, tmp_path):
    rows = pd.DataFrame([_line(i, f"c{i % 7}") for i in range(60)]).astype(str)
    rows.loc[0, "invoice_date"] = "31/02/2024 10:00"
    rows.loc[1, "invoice_date"] = "someday"
    rows.loc[2, "invoice_date"] = "2999-01-01 00:00:00"
    result, workdir = case(_write(rows, tmp_path / "dates.csv"))
    assert result.success
    assert _rejected(workdir) == {
        1: "unparseable_invoice_date",
        2: "unparseable_invoice_date",
        3: "invoice_date_out_of_range",
    }


def test_fewer_customers_than_clusters(case, tmp_path):
    rows = pd.DataFrame([_line(i, f"c{i % 5}", day=(i % 5) * 20 + i % 3) for i in range(40)]).astype(str)
    result, workdir = case(_write(rows, tmp_path / "five.csv"))
    assert result.success
    [(segmented, k)] = query(workdir, "SELECT count(*), max(k) FROM marts.customer_segments")
    assert segmented == 5
    assert 2 <= k <= 4  # k stops below the number of customers
    assert query(workdir, "SELECT max(k) FROM marts.k_selection")[0][0] == 4


def test_truncated_last_line(case, good, tmp_path):
    path = _write(good[2], tmp_path / "cut.csv")
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind(",", 0, len(text) - 40)])  # cut inside the last line
    result, workdir = case(path)
    assert result.success
    last = len(good[2])
    assert _rejected(workdir)[last] in {"missing_customer_id", "unparseable_invoice_date"}
    [(raw,)] = query(workdir, "SELECT sum(lines) FROM raw.loads")
    assert raw == last


def test_non_utf8_bytes_are_read_as_latin1(case, tmp_path):
    rows = pd.DataFrame([_line(i, f"c{i % 7}") for i in range(30)]).astype(str)
    rows.loc[0, "description"] = "CAFÉ AU LAIT BOWL"
    path = tmp_path / "latin1.csv"
    rows.to_csv(path, index=False, encoding="latin-1")
    result, workdir = case(path)
    assert result.success
    raw = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["raw_transactions"]
    )
    assert raw.materialization.metadata["source_encoding"].value == "latin-1"
    assert query(workdir, "SELECT description FROM staging.transactions WHERE source_row = 1") == [
        ("CAFÉ AU LAIT BOWL",)
    ]


def test_duplicated_file_contents_count_once(case, good, tmp_path):
    workdir_good, before, frame, *_ = good
    doubled = pd.concat([frame, frame], ignore_index=True)
    result, workdir = case(_write(doubled, tmp_path / "twice.csv"))
    assert result.success
    rules = dict(query(workdir, "SELECT rule, count(*) FROM staging.rejected_rows GROUP BY rule"))
    [(first_clean,)] = query(workdir_good, "SELECT count(*) FROM staging.transactions")
    first = dict(query(workdir_good, "SELECT rule, count(*) FROM staging.rejected_rows GROUP BY rule"))
    # A line the good file had once is now twice (one duplicate); one it had twice is now four times. A
    # line of absurd quantity is now twice too: one copy a duplicate in its file, the other absurd in the
    # history (which judges quantities over all files).
    assert rules["duplicate_line"] == first_clean + 2 * first["duplicate_line"] + first["absurd_quantity"]
    assert rules["absurd_quantity"] == first["absurd_quantity"]
    assert _checksums(workdir)["marts.customer_features"] == before["marts.customer_features"]
    assert query(
        workdir, "SELECT customer_id, cluster, segment FROM marts.customer_segments ORDER BY 1"
    ) == query(workdir_good, "SELECT customer_id, cluster, segment FROM marts.customer_segments ORDER BY 1")


def test_same_file_loaded_twice_gives_the_same_tables(case, good):
    workdir_good, before, *_ = good
    source = workdir_good / "source" / "transactions.csv"
    result, workdir = case(source)
    assert result.success
    after = _checksums(workdir)
    # Everything but the lineage columns (run ids) is identical.
    for table in (
        "staging.customers",
        "marts.customer_features",
        "marts.k_selection",
        "marts.segment_profiles",
    ):
        assert after[table] == before[table], table


def test_outlier_heavy_file(case, good, tmp_path):
    """Large orders stay (a tenth of the lines at 100 times what their product's lines usually carry);
    entry errors go (a few lines at 50,000 times)."""
    frame = good[2]
    heavy = frame.copy()
    large = (heavy.index % 10 == 0) & (heavy.index % 97 != 0)
    errors = heavy.index % 97 == 0
    quantity = heavy["quantity"].astype(int)
    typical = quantity.abs().where(quantity != 0).groupby(heavy["stock_code"].str.upper()).transform("median")
    planted = quantity.abs() > 1000 * typical  # the default data's own entry errors (20,000 and more)
    heavy.loc[large, "quantity"] = typical[large] * 100 * quantity[large].map(lambda q: -1 if q < 0 else 1)
    heavy.loc[errors, "quantity"] = (typical[errors] * 50_000).astype(int)
    heavy["quantity"] = heavy["quantity"].astype(float).round().astype(int).astype(str)
    result, workdir = case(_write(heavy, tmp_path / "outliers.csv"))
    assert result.success
    rejected = dict(query(workdir, "SELECT source_row - 1, rule FROM staging.rejected_rows"))
    attributable = heavy["customer_id"] != ""
    absurd = {row for row, rule in rejected.items() if rule == "absurd_quantity"}
    assert absurd <= set(heavy.index[(errors | planted) & attributable])
    assert len(absurd) > 0.8 * (errors & attributable).sum()
    kept_large = set(heavy.index[large & attributable]) - set(rejected)
    assert len(kept_large) > 0.9 * (large & attributable).sum()  # the large orders are not refused
    [(featured, segmented)] = query(
        workdir,
        "SELECT (SELECT count(*) FROM marts.customer_features), "
        "(SELECT count(*) FROM marts.customer_segments)",
    )
    assert featured == segmented > 0


def test_bom_crlf_and_quoted_commas_read_like_a_plain_file(case, good, tmp_path):
    _, before, frame, *_ = good
    quoted = frame.assign(description=frame["description"].str.replace("HOLDER", "HOLDER, WHITE"))
    path = tmp_path / "windows.csv"
    quoted.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    result, workdir = case(path)
    assert result.success
    assert _materialized(result) == ALL_ASSETS
    assert _checksums(workdir)["marts.customer_features"] == before["marts.customer_features"]
    assert (
        query(workdir, "SELECT count(*) FROM staging.transactions WHERE description LIKE '%HOLDER, WHITE%'")[
            0
        ][0]
        > 0
    )


def _line(i: int, customer: str, day: int | None = None) -> dict[str, object]:
    """A clean canonical line for hand-built files: invoice i, `day` (or i) days into 2024."""
    when = dt.datetime(2024, 1, 1, 10) + dt.timedelta(days=i if day is None else day)
    return {
        "invoice_no": str(1000 + i),
        "stock_code": f"S{i % 4}",
        "description": "MUG",
        "quantity": 1 + i % 3,
        "unit_price": 2.5 + i % 5,
        "invoice_date": when.strftime("%Y-%m-%d %H:%M:%S"),
        "customer_id": customer,
        "country": "United Kingdom",
    }
