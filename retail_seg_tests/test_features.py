"""RFM features computed in DuckDB match a hand calculation."""

import datetime as dt

import pandas as pd
import pytest

from retail_seg.core.cleaning import build_customers, clean_transactions
from retail_seg.core.features import build_customer_features
from retail_seg.core.rfm import rfm_segment
from retail_seg.core.sources import load_raw
from retail_seg.core.tables import (
    CUSTOMER_FEATURES,
    CUSTOMERS,
    RAW_TRANSACTIONS,
    REJECTED_ROWS,
    STAGING_TRANSACTIONS,
)
from retail_seg.core.warehouse import publish, read_table
from retail_seg_tests.conftest import canonical_row

ROWS = [
    # a: two invoices (one of two lines), one partial return -> F=2, M=2*5+1*10+3*5-1*5=30
    canonical_row(
        invoice_no="1", quantity="2", unit_price="5", invoice_date="2024-03-01 09:00", customer_id="a"
    ),
    canonical_row(
        invoice_no="1",
        stock_code="B",
        quantity="1",
        unit_price="10",
        invoice_date="2024-03-01 09:00",
        customer_id="a",
    ),
    canonical_row(
        invoice_no="2", quantity="3", unit_price="5", invoice_date="2024-03-20 17:30", customer_id="a"
    ),
    canonical_row(
        invoice_no="C3", quantity="-1", unit_price="5", invoice_date="2024-03-25 10:00", customer_id="a"
    ),
    # b: one purchase on the last day -> R=1 from the default as-of
    canonical_row(
        invoice_no="4", quantity="1", unit_price="7.25", invoice_date="2024-03-31 23:59", customer_id="b"
    ),
    # c: bought, then returned everything -> no spend to segment
    canonical_row(
        invoice_no="5", quantity="2", unit_price="4", invoice_date="2024-02-01 12:00", customer_id="c"
    ),
    canonical_row(
        invoice_no="C6", quantity="-2", unit_price="4", invoice_date="2024-02-02 12:00", customer_id="c"
    ),
    # d: only a return (bought before the export began)
    canonical_row(
        invoice_no="C7", quantity="-1", unit_price="3", invoice_date="2024-02-03 12:00", customer_id="d"
    ),
]


def _features(conn, path, as_of=None):
    load_raw(conn, path, load_id="L")
    publish(conn, RAW_TRANSACTIONS)
    clean_transactions(conn, run_date=dt.date(2024, 6, 1))
    publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
    built = build_customer_features(conn, as_of=as_of)
    publish(conn, CUSTOMER_FEATURES)
    return built, read_table(conn, CUSTOMER_FEATURES).set_index("customer_id")


def test_rfm_matches_hand_calculation(conn, canonical_csv):
    built, features = _features(conn, canonical_csv(ROWS))
    assert built.as_of == dt.date(2024, 4, 1)  # the day after the latest line, never the wall clock
    assert sorted(features.index) == ["a", "b"]
    assert features.loc["a", ["recency_days", "frequency", "monetary"]].tolist() == [12, 2, 30.0]
    assert features.loc["b", ["recency_days", "frequency", "monetary"]].tolist() == [1, 1, 7.25]
    assert (built.customers, built.without_purchase, built.non_positive_spend) == (2, 1, 1)


def test_explicit_as_of_ignores_later_lines(conn, canonical_csv):
    built, features = _features(conn, canonical_csv(ROWS), as_of=dt.date(2024, 3, 10))
    assert built.as_of == dt.date(2024, 3, 10)
    assert sorted(features.index) == ["a"]  # b bought later; c returned all; d never bought
    assert features.loc["a", ["recency_days", "frequency", "monetary"]].tolist() == [9, 1, 20.0]


def test_engineered_features_match_hand_calculation(conn, canonical_csv):
    _, features = _features(conn, canonical_csv(ROWS))
    a = features.loc["a"]
    assert a["tenure_days"] == 31  # first purchase 1 March, as-of 1 April
    assert a["avg_order_value"] == 15.0  # 30 net over 2 invoices
    assert a["mean_days_between"] == pytest.approx(19.35, abs=0.01)  # 19 days 8.5 hours, one gap
    assert a["return_rate"] == pytest.approx(5 / 35, abs=1e-4)  # returned 5 of 35 bought
    b = features.loc["b"]
    assert pd.isna(b["mean_days_between"])  # one purchase: no gap to measure
    assert b["return_rate"] == 0.0


def test_products_bought_are_counted_per_customer(conn, canonical_csv):
    _features(conn, canonical_csv(ROWS))
    build_customers(conn)
    publish(conn, CUSTOMERS)
    people = read_table(conn, CUSTOMERS).set_index("customer_id")
    assert people.loc["a", "distinct_products"] == 2  # A twice and B; the return of A adds nothing


def test_rfm_scores_and_named_segment(conn, canonical_csv):
    _, features = _features(conn, canonical_csv(ROWS))
    # Two customers score 1 and 3: b is more recent; a buys more often and spends more.
    assert features.loc["a", ["r_score", "f_score", "m_score"]].tolist() == [1, 3, 3]
    assert features.loc["b", ["r_score", "f_score", "m_score"]].tolist() == [3, 1, 1]
    assert features.loc["a", "rfm_segment"] == rfm_segment(1, 3)
    assert features.loc["b", "rfm_segment"] == rfm_segment(3, 1)
