"""EDA statistics computed in DuckDB match pandas and hand counts; the figures draw."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from retail_seg.core import eda_figures
from retail_seg.core.eda import (
    AGE_BANDS,
    STATISTICS,
    histogram,
    spend_by_demographics,
    spend_by_month,
    summarize_numeric,
)
from retail_seg.core.features import invoices_sql
from retail_seg.core.tables import Table

SAMPLE = Table("eda", "sample")
FEATURES = Table("eda", "features")
CUSTOMERS = Table("eda", "customers")
TRANSACTIONS = Table("eda", "transactions")
# The lines summed per invoice, as the history keeps them for a load.
SUMMED = "(" + invoices_sql(f"(SELECT *, 'one' AS load_id FROM {TRANSACTIONS})") + ")"

# Spend: 3.0 and 2.0 are both most frequent and 3.0 comes first, so a first-seen mode would say 3.0.
SPEND = [3.0, 10.0, 3.0, 2.0, None, 2.0, math.nan, 1.0, 7.5]
# Quantity: 4 and 1 tie, 4 first. Flat: constant, where pandas' skew is 0 and DuckDB's skewness() NULL.
QUANTITY = [4, 4, 9, 1, None, 1, 3, 2, 6]
FLAT = [5.0] * len(SPEND)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def create(conn, table: Table, columns: str, rows: list[tuple]) -> None:
    """Create a table in its schema from typed columns and rows."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
    conn.execute(f"CREATE TABLE {table} ({columns})")
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", [list(row) for row in rows])


@pytest.fixture
def sample(conn):
    create(
        conn,
        SAMPLE,
        "spend DOUBLE, quantity INTEGER, flat DECIMAL(6, 2)",
        list(zip(SPEND, QUANTITY, FLAT, strict=True)),
    )
    return conn


def pandas_statistics(values: pd.Series) -> dict[str, float]:
    return {
        "count": values.count(),
        "missing": values.isna().sum(),
        "mean": values.mean(),
        "median": values.median(),
        "mode": values.mode().iloc[0],
        "std": values.std(),
        "min": values.min(),
        "q05": values.quantile(0.05),
        "q25": values.quantile(0.25),
        "q75": values.quantile(0.75),
        "q95": values.quantile(0.95),
        "max": values.max(),
        "skew": values.skew(),
    }


def test_summary_matches_pandas(sample):
    assert sample.execute(f"SELECT count(*) FROM {SAMPLE} WHERE isnan(spend)").fetchall() == [(1,)]
    summary = summarize_numeric(sample, SAMPLE, ("spend", "quantity", "flat"), grain="line")
    assert list(summary.columns) == ["grain", "variable", "statistic", "value"]
    assert (summary["grain"] == "line").all()
    assert list(summary["variable"]) == [v for v in ("spend", "quantity", "flat") for _ in STATISTICS]
    assert list(summary["statistic"]) == list(STATISTICS) * 3
    frame = pd.DataFrame({"spend": SPEND, "quantity": QUANTITY, "flat": FLAT}, dtype=float)
    for variable in frame.columns:
        got = summary[summary["variable"] == variable].set_index("statistic")["value"]
        expected = pandas_statistics(frame[variable])
        for statistic in STATISTICS:
            assert got[statistic] == pytest.approx(expected[statistic], rel=1e-12), (variable, statistic)


def test_summary_hand_values(sample):
    summary = summarize_numeric(sample, SAMPLE, ("spend", "quantity", "flat"), grain="line")
    value = summary.set_index(["variable", "statistic"])["value"]
    assert value["spend", "missing"] == 2  # one NULL, one NaN
    assert value["spend", "count"] == 7
    assert value["spend", "mode"] == 2.0
    assert value["quantity", "mode"] == 1
    assert value["quantity", "missing"] == 1
    assert value["flat", "skew"] == 0
    assert value["flat", "std"] == 0


def test_summary_skew_is_exact_far_from_zero(conn):
    values = 1e10 + np.random.default_rng(0).gamma(2.0, 1.0, 5_000)
    create(conn, SAMPLE, "spend DOUBLE", [(v,) for v in values])
    summary = summarize_numeric(conn, SAMPLE, ("spend",), grain="line").set_index("statistic")["value"]
    assert summary["skew"] == pytest.approx(pd.Series(values).skew(), rel=1e-9)
    assert summary["std"] == pytest.approx(pd.Series(values).std(), rel=1e-9)


def test_summary_of_too_few_values_is_nan(conn):
    create(conn, SAMPLE, "spend DOUBLE", [(1.0,), (2.0,)])
    value = summarize_numeric(conn, SAMPLE, ("spend",), grain="line").set_index("statistic")["value"]
    assert value["count"] == 2
    assert math.isnan(value["skew"])
    assert value["std"] == pytest.approx(math.sqrt(0.5))


def test_summary_refuses_repeated_columns(sample):
    with pytest.raises(ValueError, match="distinct"):
        summarize_numeric(sample, SAMPLE, ("spend", "spend"), grain="line")


@pytest.fixture
def spread(conn):
    values = [0, 1, 2, 2, 5, 9, 10, None, 100]
    returns = [False] * 8 + [True]
    create(conn, SAMPLE, "value DOUBLE, is_return BOOLEAN", list(zip(values, returns, strict=True)))
    return conn


def test_histogram_bins_by_hand(spread):
    bins = histogram(spread, SAMPLE, "value", bins=5, where="NOT is_return")
    assert list(bins.columns) == ["left", "right", "count"]
    assert list(bins["left"]) == [0, 2, 4, 6, 8]
    assert list(bins["right"]) == [2, 4, 6, 8, 10]
    # Closed on the left, so 2 falls in [2, 4); the last bin holds the maximum.
    assert list(bins["count"]) == [2, 2, 1, 0, 2]
    assert bins["count"].sum() == 7


def test_histogram_without_where_counts_every_non_null_value(spread):
    bins = histogram(spread, SAMPLE, "value", bins=4)
    assert bins["count"].sum() == 8
    assert bins["right"].iloc[-1] == 100


def test_histogram_log_scale(conn):
    create(conn, SAMPLE, "value DOUBLE", [(1,), (10,), (100,), (1000,), (0,), (-5,), (None,)])
    bins = histogram(conn, SAMPLE, "value", bins=3, log=True)
    assert list(bins["left"]) == pytest.approx([1, 10, 100])
    assert list(bins["right"]) == pytest.approx([10, 100, 1000])
    assert list(bins["count"]) == [1, 1, 2]  # zero and -5 have no logarithm


def test_histogram_of_one_value_and_of_none(conn):
    create(conn, SAMPLE, "value DOUBLE", [(5.0,), (5.0,)])
    single = histogram(conn, SAMPLE, "value", bins=2)
    assert list(single["left"]) == [4.5, 5.0]
    assert list(single["count"]) == [0, 2]
    assert histogram(conn, SAMPLE, "value", where="value > 5").empty


@pytest.fixture
def demographics(conn):
    create(
        conn,
        FEATURES,
        "customer_id VARCHAR, monetary DOUBLE",
        [("a", 100), ("b", 300), ("c", 200), ("d", 50), ("e", 70), ("f", 400), ("g", 10), ("h", 40)],
    )
    create(
        conn,
        CUSTOMERS,
        "customer_id VARCHAR, age INTEGER, gender VARCHAR",
        # e has no customer row at all; d has one with neither age nor gender.
        [
            ("a", 22, "female"),
            ("b", 30, "male"),
            ("c", 34, "female"),
            ("d", None, None),
            ("f", 65, "other"),
            ("g", 64, "male"),
            ("h", 25, "female"),
            ("z", 40, "male"),
        ],
    )
    return conn


def test_spend_by_demographics_groups_by_hand(demographics):
    table = spend_by_demographics(demographics, FEATURES, CUSTOMERS)
    assert list(table.columns) == [
        "dimension",
        "group",
        "customers",
        "total_spend",
        "mean_spend",
        "median_spend",
    ]
    rows = [tuple(row) for row in table.itertuples(index=False)]
    assert rows == [
        ("age_band", "<25", 1, 100.0, 100.0, 100.0),
        ("age_band", "25–34", 3, 540.0, 180.0, 200.0),
        ("age_band", "55–64", 1, 10.0, 10.0, 10.0),
        ("age_band", "65+", 1, 400.0, 400.0, 400.0),
        ("age_band", "unknown", 2, 120.0, 60.0, 60.0),
        ("gender", "female", 3, 340.0, pytest.approx(340 / 3), 100.0),
        ("gender", "male", 2, 310.0, 155.0, 155.0),
        ("gender", "other", 1, 400.0, 400.0, 400.0),
        ("gender", "unknown", 2, 120.0, 60.0, 60.0),
    ]


def test_spend_by_demographics_without_any_demographics(demographics):
    demographics.execute(f"DELETE FROM {CUSTOMERS}")
    table = spend_by_demographics(demographics, FEATURES, CUSTOMERS)
    assert list(zip(table["dimension"], table["group"], table["customers"], strict=True)) == [
        ("age_band", "unknown", 8),
        ("gender", "unknown", 8),
    ]


@pytest.fixture
def transactions(conn):
    create(
        conn,
        TRANSACTIONS,
        "invoice_no VARCHAR, invoice_date TIMESTAMP, customer_id VARCHAR, line_total DECIMAL(12, 2), "
        "is_return BOOLEAN",
        [
            ("1", "2024-01-05 10:00", "c1", 10, False),
            ("1", "2024-01-05 10:00", "c1", 5, False),
            ("2", "2024-01-20 12:00", "c2", 20, False),
            ("C3", "2024-01-31 23:59", "c1", -8, True),
            ("4", "2024-02-01 00:00", "c3", 30, False),
            ("C5", "2024-02-10 09:00", "c2", -20, True),
            ("6", "2024-03-15 15:30", "c1", 12.5, False),
        ],
    )
    return conn


def test_spend_by_month_by_hand(transactions):
    table = spend_by_month(transactions, SUMMED)
    assert list(table.columns) == ["month", "net_revenue", "invoices", "customers"]
    assert list(table["month"]) == list(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]))
    # Returns lower the month's revenue but are not purchase invoices; a returning customer is active.
    assert list(table["net_revenue"]) == [27.0, 10.0, 12.5]
    assert list(table["invoices"]) == [2, 1, 1]
    assert list(table["customers"]) == [2, 2, 1]


def saved_png(fig: Figure, path) -> bytes:
    fig.savefig(path)
    return path.read_bytes()


def test_histograms_figure(spread, tmp_path):
    panels = {
        "value (units)": histogram(spread, SAMPLE, "value", bins=5),
        "value, positive (units)": histogram(spread, SAMPLE, "value", bins=5, log=True),
        "nothing (units)": histogram(spread, SAMPLE, "value", where="false"),
    }
    fig = eda_figures.histograms(panels, log_x={"value, positive (units)"})
    assert isinstance(fig, Figure)
    assert fig.get_suptitle()
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(panels)
    assert [ax.get_xscale() for ax in visible] == ["linear", "log", "linear"]
    assert saved_png(fig, tmp_path / "histograms.png").startswith(PNG_MAGIC)


def test_histograms_refuses_an_unknown_log_panel(spread):
    with pytest.raises(ValueError, match="not panels"):
        eda_figures.histograms({"value": histogram(spread, SAMPLE, "value")}, log_x={"values"})


def test_spend_figures(demographics, tmp_path):
    table = spend_by_demographics(demographics, FEATURES, CUSTOMERS)
    by_age = eda_figures.spend_by_age_band(table.iloc[::-1])
    by_gender = eda_figures.spend_by_gender(table)
    for name, fig in {"age": by_age, "gender": by_gender}.items():
        assert isinstance(fig, Figure)
        assert fig.axes[0].get_title()
        assert saved_png(fig, tmp_path / f"{name}.png").startswith(PNG_MAGIC)
    # Given in reverse, the bands are still drawn in age order.
    ticks = [label.get_text() for label in by_age.axes[0].get_xticklabels()]
    assert ticks == [band for band in AGE_BANDS if band not in ("35–44", "45–54")]
    heights = [bar.get_height() for bar in by_gender.axes[0].patches]
    assert heights == pytest.approx([340 / 3, 155, 400, 60])


def test_monthly_revenue_figure(transactions, tmp_path):
    fig = eda_figures.monthly_revenue(spend_by_month(transactions, SUMMED))
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title()
    assert [text.get_text() for text in fig.axes[0].get_legend().get_texts()] == ["net revenue", "customers"]
    assert saved_png(fig, tmp_path / "monthly.png").startswith(PNG_MAGIC)
