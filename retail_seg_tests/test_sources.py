"""Source formats are recognised from the header and load to the same canonical raw table."""

import pandas as pd
import pytest

from retail_seg.core.sources import CANONICAL_COLUMNS, SourceFormatError, load_raw
from retail_seg.core.tables import RAW_TRANSACTIONS
from retail_seg.core.warehouse import publish, read_table
from retail_seg_tests.conftest import write_csv

UCI_HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
UCI_ROWS = [
    [
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "6",
        "2010-12-01 08:26:00",
        "2.55",
        "17850.0",
        "United Kingdom",
    ],
    ["C536379", "D", "Discount", "-1", "2010-12-01 09:41:00", "27.5", "14527.0", "United Kingdom"],
]
CANONICAL = [
    "536365",
    "85123A",
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "6",
    "2.55",
    "2010-12-01 08:26:00",
    "17850.0",
]


def _raw(conn, path):
    loaded = load_raw(conn, path, load_id="test-load")
    publish(conn, RAW_TRANSACTIONS)
    return loaded, read_table(conn, RAW_TRANSACTIONS)


def test_uci_csv_maps_to_canonical_columns(conn, tmp_path):
    loaded, raw = _raw(conn, write_csv(tmp_path / "uci.csv", UCI_HEADER, UCI_ROWS))
    assert loaded.format.name == "uci_online_retail"
    assert loaded.rows == 2
    first = raw.iloc[0]
    assert [
        first[c]
        for c in (
            "invoice_no",
            "stock_code",
            "description",
            "quantity",
            "unit_price",
            "invoice_date",
            "customer_id",
        )
    ] == CANONICAL
    assert raw["source_row"].tolist() == [1, 2]
    assert raw["load_id"].unique().tolist() == ["test-load"]
    assert raw["age"].isna().all()


def test_uci_parquet_loads_to_the_same_values_as_csv(conn, tmp_path):
    frame = pd.DataFrame(UCI_ROWS, columns=UCI_HEADER).astype(
        {"Quantity": int, "UnitPrice": float, "CustomerID": float}
    )
    frame.to_parquet(tmp_path / "uci.parquet")
    _, from_parquet = _raw(conn, tmp_path / "uci.parquet")
    _, from_csv = _raw(conn, write_csv(tmp_path / "uci.csv", UCI_HEADER, UCI_ROWS))
    columns = ["invoice_no", "stock_code", "quantity", "customer_id"]
    pd.testing.assert_frame_equal(from_parquet[columns], from_csv[columns])


def test_canonical_header_with_demographics_is_recognised(conn, tmp_path):
    header = [*CANONICAL_COLUMNS, "age", "gender"]
    path = write_csv(
        tmp_path / "generic.csv", header, [["1", "A", "x", "1", "2.0", "2024-01-01", "c1", "UK", "34", "F"]]
    )
    loaded, raw = _raw(conn, path)
    assert loaded.format.name == "canonical"
    assert raw.loc[0, "age"] == "34"
    assert raw.loc[0, "gender"] == "F"
    assert raw.loc[0, "product_category"] is None or pd.isna(raw.loc[0, "product_category"])


def test_header_matching_ignores_case_and_spaces(conn, tmp_path):
    header = [f" {name.upper()} " for name in UCI_HEADER]
    loaded, _ = _raw(conn, write_csv(tmp_path / "shouting.csv", header, UCI_ROWS))
    assert loaded.format.name == "uci_online_retail"


def test_unknown_header_names_file_columns_and_formats(conn, tmp_path):
    path = write_csv(tmp_path / "mystery.csv", ["order", "amount"], [["1", "2"]])
    with pytest.raises(SourceFormatError) as error:
        load_raw(conn, path, load_id="x")
    message = str(error.value)
    assert "mystery.csv" in message
    assert "columns found: order, amount" in message
    assert "uci_online_retail (InvoiceNo" in message and "canonical (invoice_no" in message


def test_missing_file_is_named(conn, tmp_path):
    with pytest.raises(SourceFormatError, match=r"nowhere\.csv: source file not found"):
        load_raw(conn, tmp_path / "nowhere.csv", load_id="x")


def test_unsupported_extension_is_named(conn, tmp_path):
    path = tmp_path / "export.json"
    path.write_text("{}")
    with pytest.raises(SourceFormatError, match=r"export.json: file type '.json' not supported"):
        load_raw(conn, path, load_id="x")
