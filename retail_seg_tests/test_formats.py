"""Every export format and file type loads to the same canonical lines; real-export quirks are handled."""

import datetime as dt

import pandas as pd
import pytest
from openpyxl import Workbook

from retail_seg.core.cleaning import build_customers, clean_transactions
from retail_seg.core.sources import SourceFormatError, load_raw
from retail_seg.core.tables import CUSTOMERS, RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import publish, read_table
from retail_seg_tests.conftest import real_file

LINES = pd.DataFrame(
    {
        "invoice": ["536365", "536365", "536366", "C536367", "536368"],
        "stock": ["85123A", "71053", "22633", "85123A", "21730"],
        "description": [
            "WHITE HANGING HEART",
            "WHITE METAL LANTERN",
            "HAND WARMER",
            "WHITE HANGING HEART",
            "GLASS STAR",
        ],
        "quantity": [6, 6, 6, -2, 12],
        "price": [2.55, 3.39, 1.85, 2.55, 4.25],
        "date": pd.to_datetime(
            [
                "2010-12-01 08:26",
                "2010-12-01 08:26",
                "2010-12-01 08:28",
                "2010-12-02 09:00",
                "2010-12-03 10:15",
            ]
        ),
        "customer": [17850.0, 17850.0, 13047.0, 17850.0, 13047.0],
        "country": ["United Kingdom"] * 5,
    }
)
HEADERS = {
    "canonical": [
        "invoice_no",
        "stock_code",
        "description",
        "quantity",
        "unit_price",
        "invoice_date",
        "customer_id",
        "country",
    ],
    "uci_online_retail": [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "UnitPrice",
        "InvoiceDate",
        "CustomerID",
        "Country",
    ],
    "uci_online_retail_ii": [
        "Invoice",
        "StockCode",
        "Description",
        "Quantity",
        "Price",
        "InvoiceDate",
        "Customer ID",
        "Country",
    ],
}
COMPARED = [*HEADERS["canonical"], "is_return"]


def _frame(format_name: str) -> pd.DataFrame:
    return LINES.set_axis(HEADERS[format_name], axis=1)


def _write(frame: pd.DataFrame, path, sheets: int = 1):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:  # an Excel workbook, the lines split over `sheets` sheets that each repeat the header
        workbook = Workbook(write_only=True)
        for part in range(sheets):
            sheet = workbook.create_sheet(f"part {part + 1}")
            sheet.append(list(frame.columns))
            for row in frame.iloc[part::sheets].itertuples(index=False):
                sheet.append([v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in row])
        workbook.save(path)
    return path


def _staged(conn, source):
    loaded = load_raw(conn, source, load_id="L")
    publish(conn, RAW_TRANSACTIONS)
    result = clean_transactions(conn, run_date=dt.date(2026, 1, 1))
    publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
    clean = (
        read_table(conn, STAGING_TRANSACTIONS)
        .sort_values(["invoice_no", "stock_code"])
        .reset_index(drop=True)
    )
    return loaded, result, clean


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    import duckdb

    path = _write(_frame("canonical"), tmp_path_factory.mktemp("ref") / "lines.csv")
    with duckdb.connect() as conn:
        return _staged(conn, path)[2][COMPARED]


@pytest.mark.parametrize("format_name", sorted(HEADERS))
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_every_format_and_file_type_gives_the_same_lines(conn, tmp_path, reference, format_name, suffix):
    source = _write(_frame(format_name), tmp_path / f"export{suffix}", sheets=2)
    loaded, _, clean = _staged(conn, source)
    assert loaded.format.name == format_name
    pd.testing.assert_frame_equal(clean[COMPARED], reference)


def test_kaggle_retail_sales_demographics_reach_customers(conn, tmp_path):
    kaggle = pd.DataFrame(
        {
            "Transaction ID": [1, 2, 3],
            "Date": ["2023-11-24", "2023-02-27", "2023-01-13"],
            "Customer ID": ["CUST001", "CUST002", "CUST003"],
            "Gender": ["Male", "Female", "Male"],
            "Age": [34, 26, 50],
            "Product Category": ["Beauty", "Clothing", "Electronics"],
            "Quantity": [3, 2, 1],
            "Price per Unit": [50, 500, 30],
            "Total Amount": [150, 1000, 30],
        }
    )
    path = tmp_path / "retail_sales.csv"
    path.write_text(kaggle.to_csv(index=False).rstrip("\n"))  # the Kaggle file has no final newline
    loaded, _, clean = _staged(conn, path)
    assert loaded.format.name == "kaggle_retail_sales"
    assert clean["line_total"].astype(float).tolist() == [150.0, 1000.0, 30.0]
    assert clean["product_category"].tolist() == ["Beauty", "Clothing", "Electronics"]
    build_customers(conn)
    publish(conn, CUSTOMERS)
    people = read_table(conn, CUSTOMERS).set_index("customer_id")
    assert people.loc["CUST002", "age"] == 26 and people.loc["CUST002", "gender"] == "female"
    assert people["age"].notna().all() and people["gender"].notna().all()


def test_the_real_kaggle_file_with_its_demographics(conn):
    loaded, result, _ = _staged(conn, real_file("retail_sales_dataset.csv"))
    assert loaded.format.name == "kaggle_retail_sales" and loaded.rows == 1000
    assert result.clean_rows == 1000
    built = build_customers(conn)
    assert (built.customers, built.with_age, built.with_gender) == (1000, 1000, 1000)


def test_a_folder_of_overlapping_exports_counts_each_invoice_once(conn, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    frame = _frame("uci_online_retail")
    _write(frame.iloc[:3], folder / "2010-12-a.csv")  # invoices 536365 and 536366
    _write(frame.iloc[2:], folder / "2010-12-b.csv")  # 536366 again, then the rest
    loaded, result, clean = _staged(conn, folder)
    assert [p.name for p in loaded.files] == ["2010-12-a.csv", "2010-12-b.csv"]
    assert loaded.rows == 6
    assert result.rejected_by_rule == {"duplicate_line": 1}
    assert clean.groupby("invoice_no").size().to_dict() == {
        "536365": 2,
        "536366": 1,
        "536368": 1,
        "C536367": 1,
    }
    raw = read_table(conn, RAW_TRANSACTIONS)
    assert sorted(zip(raw["source_file"].str.rsplit("/", n=1).str[-1], raw["source_row"], strict=True))[
        :3
    ] == [("2010-12-a.csv", 1), ("2010-12-a.csv", 2), ("2010-12-a.csv", 3)]


def test_a_glob_names_the_files_of_a_source(conn, tmp_path):
    frame = _frame("canonical")
    _write(frame.iloc[:2], tmp_path / "week_01.parquet")
    _write(frame.iloc[2:], tmp_path / "week_02.parquet")
    _write(frame, tmp_path / "other.parquet")
    loaded, _, clean = _staged(conn, tmp_path / "week_*.parquet")
    assert [p.name for p in loaded.files] == ["week_01.parquet", "week_02.parquet"] and len(clean) == 5


def test_files_of_different_formats_are_refused(conn, tmp_path):
    _write(_frame("canonical"), tmp_path / "a.csv")
    _write(_frame("uci_online_retail"), tmp_path / "b.csv")
    with pytest.raises(SourceFormatError, match=r"b\.csv is uci_online_retail but a\.csv is canonical"):
        load_raw(conn, tmp_path, load_id="L")


def test_an_empty_folder_is_named(conn, tmp_path):
    with pytest.raises(SourceFormatError, match="no export files found"):
        load_raw(conn, tmp_path, load_id="L")


def test_workbook_sheets_must_share_a_header(conn, tmp_path):
    workbook = Workbook(write_only=True)
    for title, header in (
        ("2009-2010", HEADERS["uci_online_retail_ii"]),
        ("2010-2011", HEADERS["canonical"]),
    ):
        sheet = workbook.create_sheet(title)
        sheet.append(header)
    workbook.save(tmp_path / "retail.xlsx")
    with pytest.raises(SourceFormatError, match=r"sheet '2010-2011' has columns invoice_no"):
        load_raw(conn, tmp_path / "retail.xlsx", load_id="L")


def test_quirks_of_real_exports(conn, tmp_path):
    frame = _frame("uci_online_retail").astype({"CustomerID": object})
    quirks = pd.DataFrame(
        [
            ["536370", "22728", "nan", 2, 3.75, "2010-12-01 08:45", 12583.0, "France"],
            [
                "536371",
                "gift_0001_40",
                "Dotcomgiftshop Gift Voucher Â£40.00",
                1,
                34.04,
                "2010-12-01 09:00",
                14000.0,
                "United Kingdom",
            ],
            [
                "536372",
                "85123A",
                "WHITE HANGING HEART Â£ SALE   ",
                1,
                2.55,
                "2010-12-01 09:30",
                14000.0,
                "United Kingdom",
            ],
            ["536373", "POST", "POSTAGE", 1, 18.0, "2010-12-01 10:00", 12583.0, "France"],
            ["536374", "M", "Manual", 1, 5.0, "2010-12-01 10:05", 12583.0, "France"],
            ["536375", "BANK CHARGES", "Bank Charges", 1, 15.0, "2010-12-01 10:10", 12583.0, "France"],
            ["A563185", "B", "Adjust bad debt", 1, 11062.06, "2011-08-12 14:50", 12583.0, "United Kingdom"],
        ],
        columns=frame.columns,
    )
    source = _write(pd.concat([frame, quirks], ignore_index=True), tmp_path / "quirks.csv")
    _, result, clean = _staged(conn, source)
    assert result.rejected_by_rule == {"non_product_line": 4, "bad_debt_adjustment": 1}
    by_invoice = clean.set_index("invoice_no")
    assert pd.isna(by_invoice.loc["536370", "description"])  # "nan" is no description
    assert by_invoice.loc["536372", "description"] == "WHITE HANGING HEART £ SALE"  # mojibake and spaces gone
    assert by_invoice.loc["536365", "customer_id"].tolist() == ["17850", "17850"]  # float ids lose ".0"
    rejected = read_table(conn, REJECTED_ROWS).set_index("invoice_no")
    assert rejected.loc["536371", "rule"] == "non_product_line"
    assert (
        rejected.loc["536371", "description"] == "Dotcomgiftshop Gift Voucher Â£40.00"
    )  # raw values as they were


def test_uci_codes_apply_only_to_uci_exports(conn, tmp_path):
    # Another shop's product coded "M" or "POST" is a product; only the UCI exports use those codes.
    frame = _frame("canonical").assign(stock_code=["M", "POST", "B", "M", "gift_0001_40"])
    _, result, clean = _staged(conn, _write(frame, tmp_path / "shop.csv"))
    assert result.rejected_by_rule == {} and len(clean) == 5
