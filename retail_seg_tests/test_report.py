"""The report's tables, as a reader sees them: no column that says nothing, numbers as people write them."""

import re

import pandas as pd

from retail_seg.core.report import Section, Table, informative, render_report


def test_a_column_with_one_value_for_every_segment_is_left_out():
    frame = pd.DataFrame(
        {
            "segment": ["Champions", "At risk", "New"],
            "return rate": [0.01, 0.01, 0.01],
            "customers": [10, 20, 30],
            "country": ["UK", "UK", "UK"],
        }
    )
    assert list(informative(frame).columns) == ["segment", "customers"]
    assert list(informative(frame, keep=("country",)).columns) == ["segment", "customers", "country"]
    assert list(informative(frame.head(1)).columns) == list(frame.columns)  # one row: nothing to compare


def _cells(frame: pd.DataFrame, **kinds) -> list[list[str]]:
    page = render_report("t", "l", {}, [Section("s", [Table("c", frame, **kinds)])], currency="GBP")
    body = re.search(r"<tbody>(.*)</tbody>", page, re.S).group(1)
    return [re.findall(r"<td [^>]*>([^<]*)</td>", row) for row in body.split("</tr>") if "<td" in row]


def test_numbers_print_as_people_write_them():
    frame = pd.DataFrame(
        {
            "segment": ["a", "b"],
            "customers": [307024, 12],  # a count
            "median invoices": [15.0, 3.0],  # whole medians: no decimals
            "median recency": [84.0, 433.5],  # a half day shows as one
            "mean order": [45.1, 3.14159],
            "share": [0.25, 0.0625],
            "revenue": [1234567.891, 0.4],
            "change": [-0.001, float("nan")],
        }
    )
    assert _cells(frame, percent=("share",), money=("revenue",)) == [
        ["a", "307,024", "15", "84", "45.1", "25.0%", "GBP 1,234,568", "0"],
        ["b", "12", "3", "433.5", "3.14", "6.2%", "GBP 0", "–"],
    ]
