"""The report's tables, as a reader sees them: no column that says nothing, numbers as people write them."""

import re

import pandas as pd

from retail_seg.core.report import Section, Table, informative, render_report, segment_report_sections


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


def _sections(**optional) -> dict[str, list]:
    """The report's sections for two segments, by heading."""
    profiles = pd.DataFrame(
        {
            "segment_id": ["S1", "S2"],
            "segment": ["Champions", "At risk"],
            "customers": [10, 20],
            "recommendation": ["Reward them.", "Win them back."],
        }
    )
    comparison = pd.DataFrame(
        {"selected": [True], "method": ["kmeans"], "reason": ["higher silhouette"], "k": [2]}
        | {"adjusted_rand_vs_other": [0.9]}
    )
    steps = pd.DataFrame({"feature": ["monetary"], "step": ["log1p"]})
    rejected = pd.DataFrame({"rule": ["absurd_quantity"], "lines": [3]})
    sections = segment_report_sections(
        profiles, comparison, pd.DataFrame(), steps, pd.DataFrame(), rejected, {}, **optional
    )
    return {s.heading: s.blocks for s in sections}


def test_the_movement_section_crosses_the_previous_runs_segments_with_this_ones():
    migration = pd.DataFrame(
        {
            "from_segment_id": ["S2", "S1", "S1"],
            "to_segment_id": ["S1", "S1", "S2"],
            "from_segment": ["At risk", "Champions", "Champions"],
            "to_segment": ["Champions", "Champions", "At risk"],
            "customers": [2, 7, 3],
            "previous_run": ["run-1"] * 3,
        }
    )
    [grid] = _sections(migration=migration)["Movement since the previous run"]
    assert grid.caption == "Customers by segment in run run-1 (rows) and now"
    # Rows and columns in the profiles' order, each segment named by its stable id; a move never made is 0.
    assert grid.frame.to_dict("list") == {
        "then \\ now": ["S1 Champions", "S2 At risk"],
        "S1 Champions": [7, 2],
        "S2 At risk": [3, 0],
    }
    [first] = _sections()["Movement since the previous run"]
    assert first.body == "This is the first recorded run: no movement yet."


def test_the_appendix_holds_the_preprocessing_steps_and_the_rejected_lines():
    sections = _sections()
    [steps] = sections["Appendix: preprocessing"]
    [rejected] = sections["Appendix: data quality"]
    assert steps.frame.to_dict("list") == {"feature": ["monetary"], "step": ["log1p"]}
    assert rejected.frame.to_dict("list") == {"rule": ["absurd_quantity"], "lines": [3]}
    assert list(sections)[-2:] == ["Appendix: preprocessing", "Appendix: data quality"]
