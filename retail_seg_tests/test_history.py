"""A history that grows by loads: what a publication judges again, and what it takes from the previous one.

Each test builds the same lake two ways, publication after publication in one warehouse (the nightly way,
which reuses the previous publication's verdicts) and in one go in a fresh warehouse, and requires every
table the history makes, and the features, to be the same.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from retail_seg.core import features
from retail_seg.core.features import build_customer_features
from retail_seg.core.history import build_history
from retail_seg.core.lake import Lake
from retail_seg.core.loads import LoadRules, load_file
from retail_seg.core.mappings import load_mappings
from retail_seg.core.sources import CANONICAL_COLUMNS
from retail_seg.core.tables import CUSTOMER_FEATURES, REJECTED_ACROSS_LOADS, STAGING_INVOICES
from retail_seg.core.warehouse import publish
from retail_seg_tests.conftest import canonical_row, warehouse_over, write_csv

RULES = LoadRules(run_date=dt.date(2026, 1, 1))
HEADER = list(CANONICAL_COLUMNS)


def _month(month: int, customers: int = 12, quantity: str = "2") -> list[list[str]]:
    """Three lines an invoice, one invoice a customer, in `month` of 2024."""
    return [
        canonical_row(
            invoice_no=f"{month}{c:03d}",
            stock_code=f"P{line}",
            quantity=quantity if line == 0 else "1",
            unit_price=f"{1 + line}.25",
            invoice_date=f"2024-{month:02d}-{1 + c:02d} 10:00:00",
            customer_id=f"c{c}",
        )
        for c in range(customers)
        for line in range(3)
    ]


def _load(tmp_path, warehouse, name: str, rows: list[list[str]]):
    path = write_csv(tmp_path / name, HEADER, rows)
    outcome = load_file(
        path,
        Lake(warehouse),
        load_id=f"{name}@run",
        run_id="run",
        rules=RULES,
        mappings=load_mappings(),
        id_key=None,
    )
    assert outcome.accepted, outcome.raw_gate.message()
    return outcome


def _published(conn) -> dict[str, list]:
    """What the history and the features hold, row by row."""
    build_customer_features(conn)
    publish(conn, CUSTOMER_FEATURES)
    tables = {
        REJECTED_ACROSS_LOADS: "SELECT load_id, source_row, rule FROM {} ORDER BY ALL",
        STAGING_INVOICES: "SELECT * FROM {} ORDER BY ALL",
        CUSTOMER_FEATURES: "SELECT * FROM {} ORDER BY customer_id",
        "staging.transactions": "SELECT * FROM {} ORDER BY load_id, source_row",
    }
    return {str(table): conn.execute(sql.format(table)).fetchall() for table, sql in tables.items()}


def _nightly(conn, warehouse, run_id: str, sums: str | None = None, **options):
    """A nightly publication: the history built, then the features, which add to the sums kept by the
    publication before when the history only gained loads (`sums`: how the build says it had them)."""
    history = build_history(conn, Lake(warehouse), run_id, **options)
    assert history.lines == conn.execute("SELECT count(*) FROM staging.transactions").fetchone()[0]
    build = build_customer_features(conn)
    assert build.kept_sums
    assert sums is None or build.sums == sums
    publish(conn, CUSTOMER_FEATURES)
    return history


def _from_scratch(tmp_path, warehouse) -> dict[str, list]:
    """The same lake's history built in a fresh warehouse, in one go."""
    fresh = warehouse_over(Lake(warehouse), tmp_path / "fresh")
    with duckdb.connect(str(fresh)) as conn:
        build_history(conn, Lake(fresh), "scratch")
        return _published(conn)


@pytest.fixture
def warehouse(tmp_path):
    return tmp_path / "warehouse.duckdb"


def test_daily_files_with_repeated_lines_count_them_once_as_a_whole_history_would(tmp_path, warehouse):
    """A file that repeats lines of an earlier one (an overlapping export): the nightly publication judges
    only the new file's lines, and rejects the repeats exactly as judging everything would."""
    january, february = _month(1), _month(2)
    overlap = february + january[:7]  # February's export repeats January's first seven lines
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", january)
        first = _nightly(conn, warehouse, "r1")
        assert first.duplicates == 0
        _load(tmp_path, warehouse, "feb.csv", overlap)
        second = _nightly(conn, warehouse, "r2")
        assert second.duplicates == 7
        nightly = _published(conn)
    repeats = [row for row in nightly[str(REJECTED_ACROSS_LOADS)] if row[2] == "duplicate_line"]
    assert [(load.split("@")[0], row) for load, row, _ in repeats] == [("feb.csv", r) for r in range(37, 44)]
    assert nightly == _from_scratch(tmp_path, warehouse)
    # The repeated lines leave February's invoice sums: it is summed again without them.
    invoices = nightly[str(STAGING_INVOICES)]
    assert len(invoices) == 24 and [i[-1].split("@")[0] for i in invoices if i[1] == "1000"] == ["jan.csv"]


def test_a_repeated_line_without_an_invoice_number_is_a_repeat_too(tmp_path, warehouse):
    """A line with no invoice number repeats one with none, as judging everything says: the nightly
    publication's look for repeats among the same invoices treats a missing number as one invoice."""
    blank = canonical_row(
        invoice_no="", stock_code="Z9", customer_id="c1", invoice_date="2024-01-05 10:00:00"
    )
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", [*_month(1), blank])
        _nightly(conn, warehouse, "r1")
        _load(tmp_path, warehouse, "feb.csv", [*_month(2), blank])
        assert _nightly(conn, warehouse, "r2").duplicates == 1
        assert _verdicts(conn) == [("feb.csv", 37, "duplicate_line")]
        nightly = _published(conn)
    assert nightly == _from_scratch(tmp_path, warehouse)


def _as_staged_before_blank_numbers_were_none(lake: Lake, record) -> None:
    """Rewrite a load's lines and invoice sums as a release before this one stored them: a number-less
    line's invoice number as '' rather than NULL (what a blank number became)."""
    with duckdb.connect() as conn:
        for path in (lake.files(record)[0], lake.invoices(record)):
            old = path.with_suffix(".old.parquet")
            conn.execute(
                "COPY (SELECT * REPLACE (coalesce(invoice_no, '') AS invoice_no) "
                f"FROM read_parquet('{path}')) TO '{old}' (FORMAT parquet)"
            )
            old.replace(path)


def test_a_number_less_line_staged_by_an_earlier_release_is_still_no_number(tmp_path, warehouse):
    """A load staged before blank invoice numbers were made NULL keeps '' in its files. The history reads
    that as no number, so a later file's copy of its number-less line is still the repeat it is, and the
    customer's number-less lines stay one invoice."""
    blank = canonical_row(
        invoice_no="", stock_code="Z9", customer_id="c1", invoice_date="2024-01-05 10:00:00"
    )
    lake = Lake(warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        january = _load(tmp_path, warehouse, "jan.csv", [*_month(1), blank])
        _as_staged_before_blank_numbers_were_none(lake, january.record)
        _nightly(conn, warehouse, "r1")
        _load(tmp_path, warehouse, "feb.csv", [*_month(2), blank])
        assert _nightly(conn, warehouse, "r2").duplicates == 1
        assert _verdicts(conn) == [("feb.csv", 37, "duplicate_line")]
        [(frequency,)] = conn.execute(
            f"SELECT frequency FROM {CUSTOMER_FEATURES} WHERE customer_id = 'c1'"
        ).fetchall()
        nightly = _published(conn)
    assert frequency == 3  # January's invoice, February's, and the number-less one
    assert nightly == _from_scratch(tmp_path, warehouse)


def test_a_later_file_that_moves_a_products_median_is_judged_whole(tmp_path, warehouse):
    """Medians move with every load. A line that was absurd, and so not counted as the repeat it also is,
    can stop being absurd when later files carry larger quantities of its product: the previous verdicts
    no longer hold, and the publication judges the whole history (5,000 is absurd against a median of 2,
    and a plain repeat against a median of 4,000)."""
    large = canonical_row(invoice_no="1999", stock_code="P0", quantity="5000", customer_id="c9")
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", [*_month(1, customers=4), large])
        _load(tmp_path, warehouse, "feb.csv", [*_month(2, customers=4), large])
        _nightly(conn, warehouse, "r1", absurd_factor=1000.0)
        assert _verdicts(conn) == [("feb.csv", 13, "absurd_quantity"), ("jan.csv", 13, "absurd_quantity")]
        _load(tmp_path, warehouse, "mar.csv", _month(3, customers=30, quantity="4000"))
        _nightly(conn, warehouse, "r2", absurd_factor=1000.0)
        assert _verdicts(conn) == [("feb.csv", 13, "duplicate_line")]
        nightly = _published(conn)
    assert nightly == _from_scratch(tmp_path, warehouse)


def _verdicts(conn) -> list[tuple[str, int, str]]:
    rows = conn.execute(
        f"SELECT load_id, source_row, rule FROM {REJECTED_ACROSS_LOADS} ORDER BY ALL"
    ).fetchall()
    return [(load.split("@")[0], row, rule) for load, row, rule in rows]


def test_a_corrected_file_is_judged_with_the_history_it_joins(tmp_path, warehouse):
    """A correction replaces a load in the middle of the history: nothing of the previous verdicts is taken
    on trust, and the repeats it no longer holds are kept."""
    january, february = _month(1), _month(2)
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", january)
        _load(tmp_path, warehouse, "feb.csv", february + january[:3])
        assert _nightly(conn, warehouse, "r1").duplicates == 3
        _load(tmp_path, warehouse, "jan.csv", january[3:])  # January corrected: its first invoice removed
        assert _nightly(conn, warehouse, "r2").duplicates == 0
        nightly = _published(conn)
    assert nightly == _from_scratch(tmp_path, warehouse)


def test_an_invoice_spread_over_two_files_is_one_purchase_in_the_kept_sums(tmp_path, warehouse):
    """A day's file that adds a line to an invoice an earlier file holds (an order amended after midnight)
    and brings a new customer: the sums kept from the night before take the new lines, the invoice still
    counts once, and every feature is what summing the whole history gives."""
    january = _month(1)
    amended = canonical_row(
        invoice_no="1000",
        stock_code="P9",
        quantity="1",
        unit_price="9.50",
        invoice_date="2024-01-01 10:00:00",
        customer_id="c0",
    )
    newcomer = canonical_row(
        invoice_no="2999", stock_code="P1", customer_id="c99", invoice_date="2024-02-03 09:00:00"
    )
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", january)
        _nightly(conn, warehouse, "r1", sums="summed from every invoice")
        _load(tmp_path, warehouse, "feb.csv", [*_month(2), amended, newcomer])
        _nightly(conn, warehouse, "r2", sums="kept, and 1 new load added")
        [(frequency, monetary)] = conn.execute(
            f"SELECT frequency, monetary FROM {CUSTOMER_FEATURES} WHERE customer_id = 'c0'"
        ).fetchall()
        nightly = _published(conn)
        [(summed,)] = conn.execute("SELECT count(*) FROM staging.customer_sums_basis").fetchall()
    assert (frequency, monetary) == (2, 8.0 + 8.0 + 9.5)  # January's invoice with its new line, February's
    assert summed == 2
    assert nightly == _from_scratch(tmp_path, warehouse)


def test_kept_sums_are_summed_again_when_an_earlier_file_is_corrected(tmp_path, warehouse):
    """After nights that added to the kept sums, a corrected earlier file: its old lines leave every
    customer's sums, as a history built in one go has it."""
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", _month(1))
        _nightly(conn, warehouse, "r1")
        _load(tmp_path, warehouse, "feb.csv", _month(2))
        _nightly(conn, warehouse, "r2", sums="kept, and 1 new load added")
        _nightly(conn, warehouse, "r2b", sums="kept: no load changed")
        _load(tmp_path, warehouse, "jan.csv", _month(1, customers=5, quantity="7"))
        _nightly(conn, warehouse, "r3", sums="summed from every invoice")
        nightly = _published(conn)
        [(c9,)] = conn.execute(
            f"SELECT frequency FROM {CUSTOMER_FEATURES} WHERE customer_id = 'c9'"
        ).fetchall()
    assert c9 == 1  # February's invoice only: January's corrected file no longer lists c9
    assert nightly == _from_scratch(tmp_path, warehouse)


def test_kept_sums_made_by_other_code_are_summed_again(tmp_path, warehouse, monkeypatch):
    """Sums kept by a release that summed otherwise are not added to: the first night under the new code
    sums every invoice again, and the nights after keep the sums it made."""
    with duckdb.connect(str(warehouse)) as conn:
        _load(tmp_path, warehouse, "jan.csv", _month(1))
        _nightly(conn, warehouse, "r1")
        _load(tmp_path, warehouse, "feb.csv", _month(2))
        monkeypatch.setattr(features, "_SUMMED_BY", "a later release")
        _nightly(conn, warehouse, "r2", sums="summed from every invoice")
        _load(tmp_path, warehouse, "mar.csv", _month(3))
        _nightly(conn, warehouse, "r3", sums="kept, and 1 new load added")
        nightly = _published(conn)
    assert nightly == _from_scratch(tmp_path, warehouse)
