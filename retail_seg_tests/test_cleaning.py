"""Staging keeps every raw line exactly once: clean and typed, or rejected with the rule it broke."""

import datetime as dt

import pandas as pd

from retail_seg.core.cleaning import build_customers, clean_transactions
from retail_seg.core.sources import CANONICAL_COLUMNS, load_raw
from retail_seg.core.tables import CUSTOMERS, RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import publish, read_table
from retail_seg_tests.conftest import canonical_row, write_csv

ROWS = [
    canonical_row(),  # 1 clean
    canonical_row(),  # 2 exact copy of 1
    canonical_row(customer_id=""),  # 3
    canonical_row(invoice_date="yesterday"),  # 4
    canonical_row(quantity="two"),  # 5
    canonical_row(unit_price="1,50"),  # 6
    canonical_row(quantity="0"),  # 7
    canonical_row(quantity="1.5"),  # 8
    canonical_row(unit_price="0"),  # 9
    canonical_row(unit_price="-3.20"),  # 10
    canonical_row(quantity="80995"),  # 11
    canonical_row(invoice_no="C1002", quantity="-1", customer_id="17850.0"),  # 12 clean return
    canonical_row(invoice_no="1003", invoice_date="12/1/2010 8:26", customer_id=" c2 "),  # 13 clean, US date
    canonical_row(invoice_no="1004", invoice_date="2031-05-01 10:00:00"),  # 14 after the run date
    canonical_row(invoice_no="1005", invoice_date="1899-12-31"),  # 15 before the earliest plausible date
    canonical_row(description="MUG  "),  # 16 the same line as 1, but for trailing spaces
    canonical_row(invoice_no="", stock_code="B2"),  # 17 clean, no invoice number
    canonical_row(invoice_no="   ", stock_code="B3"),  # 18 clean: blank is no number either
]
RUN_DATE = dt.date(2025, 1, 1)
EXPECTED_RULES = {
    2: "duplicate_line",
    3: "missing_customer_id",
    4: "unparseable_invoice_date",
    5: "quantity_not_a_number",
    6: "unit_price_not_a_number",
    7: "zero_quantity",
    8: "fractional_quantity",
    9: "non_positive_unit_price",
    10: "non_positive_unit_price",
    11: "absurd_quantity",
    14: "invoice_date_out_of_range",
    15: "invoice_date_out_of_range",
    16: "duplicate_line",
}


def _staged(conn, path):
    load_raw(conn, path, load_id="L1")
    publish(conn, RAW_TRANSACTIONS)
    result = clean_transactions(conn, run_date=RUN_DATE, max_abs_quantity=10_000)
    publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
    return result, read_table(conn, STAGING_TRANSACTIONS), read_table(conn, REJECTED_ROWS)


def test_each_bad_line_is_rejected_for_its_rule(conn, canonical_csv):
    result, clean, rejected = _staged(conn, canonical_csv(ROWS))
    assert dict(zip(rejected["source_row"], rejected["rule"], strict=True)) == EXPECTED_RULES
    assert sorted(clean["source_row"]) == [1, 12, 13, 17, 18]
    assert result.clean_rows == 5
    # Empty or blank, no number is the same no number: the two lines are one purchase, not two.
    assert clean.set_index("source_row").loc[[17, 18], "invoice_no"].isna().all()
    assert result.rejected_by_rule["non_positive_unit_price"] == 2
    assert result.rejected_rows == len(EXPECTED_RULES)


def test_rejected_rows_keep_the_raw_values(conn, canonical_csv):
    _, _, rejected = _staged(conn, canonical_csv(ROWS))
    row = rejected.set_index("source_row").loc[6]
    assert row["unit_price"] == "1,50"
    assert row["load_id"] == "L1"
    assert row["source_file"].endswith("transactions.csv")


def test_clean_lines_are_typed_with_returns_and_line_totals(conn, canonical_csv):
    _, clean, _ = _staged(conn, canonical_csv(ROWS))
    by_row = clean.set_index("source_row")
    ret = by_row.loc[12]
    assert ret["customer_id"] == "17850"  # float ids from spreadsheets lose their ".0"
    assert bool(ret["is_return"]) and ret["quantity"] == -1 and ret["line_total"] == -1.5
    assert not by_row.loc[1, "is_return"] and by_row.loc[1, "line_total"] == 3.0
    assert by_row.loc[13, "customer_id"] == "c2"
    assert by_row.loc[13, "invoice_date"] == pd.Timestamp("2010-12-01 08:26")


def test_gender_spellings_and_ages_normalise(conn, tmp_path):
    header = [*CANONICAL_COLUMNS, "age", "gender"]
    rows = [
        ["1", "A", "x", "1", "2.0", "2024-01-01", "c1", "UK", "34", " Female "],
        ["2", "A", "x", "1", "2.0", "2024-01-02", "c1", "UK", "34", "F"],
        ["3", "A", "x", "1", "2.0", "2024-01-03", "c1", "UK", "", "woman"],
        ["4", "A", "x", "1", "2.0", "2024-01-01", "c2", "UK", "250", "MALE"],
        ["5", "A", "x", "1", "2.0", "2024-01-01", "c3", "UK", "41.0", "?"],
    ]
    _staged(conn, write_csv(tmp_path / "demo.csv", header, rows))
    clean = read_table(conn, STAGING_TRANSACTIONS).set_index("source_row").sort_index()
    assert clean["gender"].tolist() == ["female", "female", "female", "male", None]
    assert clean.loc[4, "age"] is pd.NA or pd.isna(clean.loc[4, "age"])  # 250 is not an age
    built = build_customers(conn)
    publish(conn, CUSTOMERS)
    people = read_table(conn, CUSTOMERS).set_index("customer_id")
    assert (built.customers, built.with_age, built.with_gender) == (3, 2, 2)
    assert people.loc["c1", "age"] == 34 and people.loc["c1", "gender"] == "female"
    assert people.loc["c3", "age"] == 41
    assert people.loc["c1", "lines"] == 3
    assert people.loc["c1", "distinct_products"] == 1  # three lines of product A


def test_every_raw_line_lands_exactly_once(conn, canonical_csv):
    _, clean, rejected = _staged(conn, canonical_csv(ROWS))
    landed = sorted([*clean["source_row"], *rejected["source_row"]])
    assert landed == list(range(1, len(ROWS) + 1))
