"""Source formats are recognised from the header and load to the same canonical raw table."""

import hashlib
import threading
import time

import pandas as pd
import pytest

from retail_seg.core.sources import CANONICAL_COLUMNS, SourceFormatError, csv_reason, load_raw
from retail_seg.core.tables import RAW_LOADS, RAW_TRANSACTIONS
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
    assert "the header has 2 columns, 0 of them" in message
    assert "order" not in message.split("formats known")[0]  # the file's own names are not echoed
    assert "uci_online_retail (InvoiceNo" in message and "canonical (invoice_no" in message


def test_a_title_above_the_header_is_named_as_what_to_remove(conn, tmp_path):
    """A report's title and date range above the header: the refusal says the header is further down and
    what the file loads as once they go, without repeating what they say."""
    path = tmp_path / "report.csv"
    path.write_text(
        "Sales report SECRET-CLIENT\nFrom 2024-01-01 to 2024-01-31\n\n"
        + "\n".join(",".join(row) for row in [UCI_HEADER, *UCI_ROWS])
        + "\n"
    )
    with pytest.raises(SourceFormatError) as error:
        load_raw(conn, path, load_id="x")
    message = str(error.value)
    assert message == (
        "report.csv: the header is below 2 other lines (a title or a note?); remove them and the file loads "
        "as uci_online_retail"
    )
    path.write_text("\n".join(",".join(row) for row in [UCI_HEADER, *UCI_ROWS]) + "\n")
    loaded, _ = _raw(conn, path)
    assert loaded.format.name == "uci_online_retail" and loaded.rows == 2


def test_missing_file_is_named(conn, tmp_path):
    with pytest.raises(SourceFormatError, match=r"nowhere\.csv: source file not found"):
        load_raw(conn, tmp_path / "nowhere.csv", load_id="x")


def test_unsupported_extension_is_named(conn, tmp_path):
    path = tmp_path / "export.json"
    path.write_text("{}")
    with pytest.raises(SourceFormatError, match=r"export.json: file type '.json' not supported"):
        load_raw(conn, path, load_id="x")


# Valid CSV that the fast reader refuses, and a CSV that is broken -------------------------------------


def _canonical_csv(path, descriptions: list[str]) -> list[list[str]]:
    rows = [
        [str(1000 + i), "A1", text, "2", "1.50", "2024-01-10 10:00:00", "c1", "UK"]
        for i, text in enumerate(descriptions)
    ]
    write_csv(path, list(CANONICAL_COLUMNS), rows)
    return rows


def test_a_quoted_line_break_loads(conn, tmp_path):
    path = tmp_path / "quoted.csv"
    _canonical_csv(path, ["MUG", "MUG", "LANTERN,\nWITH A LINE BREAK", *["MUG"] * 20])
    loaded, raw = _raw(conn, path)
    assert loaded.rows == 23
    assert raw.loc[raw["source_row"] == 3, "description"].item() == "LANTERN,\nWITH A LINE BREAK"
    assert raw["source_row"].tolist() == list(range(1, 24))


def test_a_line_that_starts_with_a_hash_is_a_line_not_a_comment(conn, tmp_path):
    """DuckDB's sniffer can take '#' for a comment mark when some lines start with it and others do not,
    and then drops every such line without a word: here, every order named like Shopify's ("#1001")."""
    path = tmp_path / "hashes.csv"
    rows = [
        ["#1001", "A1", "MUG", "2", "1.50", "2024-01-10 10:00:00", "c1", "United Kingdom"],
        ["", "A2", "BOWL", "1", "3.00", "2024-01-10 10:00:00", "c1", "United Kingdom"],
        ["#1002", "A1", "MUG", "1", "1.50", "2024-01-11 10:00:00", "c2", "United Kingdom"],
        ["# not a comment", "A3", "JUG", "1", "4.00", "2024-01-12 10:00:00", "c3", "United Kingdom"],
    ]
    write_csv(path, list(CANONICAL_COLUMNS), rows)
    loaded, raw = _raw(conn, path)
    assert loaded.rows == 4
    assert raw["invoice_no"].tolist() == ["#1001", None, "#1002", "# not a comment"]
    assert raw["source_row"].tolist() == [1, 2, 3, 4]


def test_a_five_megabyte_line_loads(conn, tmp_path):
    path = tmp_path / "long.csv"
    _canonical_csv(path, ["MUG", "x" * (5 * 1024 * 1024), "MUG"])
    loaded, raw = _raw(conn, path)
    assert loaded.rows == 3 and raw["description"].str.len().max() == 5 * 1024 * 1024


def test_a_broken_csv_names_the_file_and_duckdbs_reason_not_the_content(conn, tmp_path):
    path = tmp_path / "broken.csv"
    _canonical_csv(path, ["MUG"] * 30)  # written with CRLF line ends...
    with path.open("a") as handle:  # ...then a line with a bare LF and more fields, carrying a secret
        handle.write("1003,A1,MUG,2,1.50,2024-01-10 10:00:00,c1,UK,hunter2\n")
    with pytest.raises(SourceFormatError) as error:
        load_raw(conn, path, load_id="x")
    message = str(error.value)
    assert message.startswith('broken.csv: cannot be read: Error when sniffing file "broken.csv"')
    assert "not possible to automatically detect the CSV parsing dialect" in message  # DuckDB's reason
    assert "hunter2" not in message and "retail_seg_" not in message  # no content, no snapshot path


def test_csv_reasons_keep_duckdbs_line_and_drop_the_lines_content():
    duckdb_said = (
        "Invalid Input Error: CSV Error on Line: 7\nOriginal Line: 1,A,hunter2,2\n"
        "Maximum line size of 2000000 bytes exceeded. Actual Size:5242905 bytes.\n\n"
        "Possible Solution: Change the maximum length size\n\n  file = /tmp/x.csv\n  delimiter = ,"
    )
    assert csv_reason(Exception(duckdb_said)) == (
        "CSV Error on Line: 7: Maximum line size of 2000000 bytes exceeded. Actual Size:5242905 bytes."
    )


def test_a_file_growing_while_it_loads_is_recorded_by_the_bytes_loaded(conn, tmp_path):
    path = tmp_path / "growing.csv"
    _canonical_csv(path, ["MUG"] * 2000)
    line = "9999,A1,MUG,2,1.50,2024-01-10 10:00:00,c2,UK\r\n"  # the CRLF the file was written with
    stop = threading.Event()

    def keep_writing():  # about 2 MB a second, and never more than 32 MB, however slow the load
        with path.open("a") as handle:
            for _ in range((32 << 20) // len(line * 50)):
                if stop.is_set():
                    break
                handle.write(line * 50)
                handle.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        time.sleep(0.05)
        loaded = load_raw(conn, path, load_id="x")
    finally:
        stop.set()
        writer.join()
    [(recorded, size, lines)] = conn.execute(
        f"SELECT source_sha256, bytes, lines FROM {RAW_LOADS.candidate}"
    ).fetchall()
    loaded_bytes = path.read_bytes()[:size]
    assert len(path.read_bytes()) > size  # it kept growing after the snapshot
    assert recorded == loaded.sha256 == hashlib.sha256(loaded_bytes).hexdigest()
    assert lines == len(loaded_bytes.splitlines()) - 1 == loaded.rows  # every line of those bytes, no other
