"""Profiles and their labels follow the numbers."""

import pandas as pd
import pytest

from retail_seg.core.profiles import (
    WIN_BACK,
    SegmentNumbers,
    label_clusters,
    label_segment,
    profile_segments,
    typical_gap,
)


def _numbers(**changed) -> SegmentNumbers:
    """A middling segment: bought 40 days ago against a usual gap of 30 (the base's too), a long-standing
    customer base, median frequency and spend."""
    numbers = dict(
        recency=40.0,
        min_recency=5.0,
        gap=30.0,
        typical_gap=30.0,
        tenure=400.0,
        frequency_pct=0.4,
        monetary_pct=0.4,
    )
    return SegmentNumbers(**{**numbers, **changed})


@pytest.mark.parametrize(
    ("changed", "label"),
    [
        ({"recency": 10, "frequency_pct": 0.9, "monetary_pct": 0.8}, "champions"),
        ({"recency": 50, "frequency_pct": 0.9, "monetary_pct": 0.8}, "frequent"),  # not recent enough
        ({"frequency_pct": 0.6}, "frequent"),
        ({"tenure": 50}, "new"),
        ({"recency": 300, "min_recency": 100, "frequency_pct": 0.6}, "at-risk"),
        ({"recency": 300, "min_recency": 100}, "lapsed"),
        ({"recency": 300, "min_recency": 10, "frequency_pct": 0.6}, "slipping"),  # someone bought lately
        (
            {"recency": 150, "gap": 90, "monetary_pct": 0.9},
            "big-spender",
        ),  # late by others' rhythm, not its own
        ({}, "occasional"),
        # Churn risk: a segment likely gone is not frequent, however recent its last purchase looks...
        ({"frequency_pct": 0.6, "churn_risk": 0.7, "min_recency": 35}, "at-risk"),
        ({"frequency_pct": 0.6, "churn_risk": 0.7}, "slipping"),  # ...unless someone in it bought lately
        ({"recency": 10, "frequency_pct": 0.9, "monetary_pct": 0.8, "churn_risk": 0.6}, "slipping"),
        ({"frequency_pct": 0.6, "churn_risk": 0.49}, "frequent"),  # more likely active than gone
    ],
)
def test_label_rules(changed, label):
    assert label_segment(_numbers(**changed)) == label


def test_a_win_back_label_never_reaches_a_customer_who_bought_within_the_typical_gap():
    for min_recency in (0, 15, 30):
        for frequency_pct in (0.1, 0.9):
            numbers = _numbers(recency=400, min_recency=min_recency, frequency_pct=frequency_pct)
            assert label_segment(numbers) not in WIN_BACK
    assert label_segment(_numbers(recency=400, min_recency=31)) in WIN_BACK


def test_only_the_strongest_champions_keep_the_label():
    strong = {**_numbers(recency=5, frequency_pct=0.95, monetary_pct=0.95).__dict__}
    good = {**strong, "frequency_pct": 0.8, "monetary_pct": 0.8}
    gone = {**_numbers(recency=400, min_recency=200).__dict__}
    numbers = pd.DataFrame([strong, good, gone])
    assert label_clusters(numbers) == ["champions", "frequent", "lapsed"]
    assert label_clusters(numbers.iloc[[1, 0, 2]]) == ["frequent", "champions", "lapsed"]


def _customers():
    return pd.DataFrame(
        {
            "customer_id": list("abcdefgh"),
            "recency_days": [2, 3, 4, 200, 220, 250, 10, 12],
            "frequency": [30, 25, 28, 1, 2, 1, 1, 1],
            "monetary": [5000.0, 4000.0, 6000.0, 30.0, 60.0, 20.0, 80.0, 90.0],
            "tenure_days": [700, 650, 690, 200, 300, 250, 10, 12],
            "mean_days_between": [20.0, 22.0, 21.0, None, 40.0, None, None, None],
        }
    )


def test_profiles_name_segments_from_their_numbers():
    features = _customers()
    clusters = pd.DataFrame({"customer_id": list("abcdefgh"), "cluster": [2, 2, 2, 0, 0, 0, 1, 1]})
    profiles = profile_segments(features, clusters).set_index("cluster")
    assert typical_gap(features) == 21.5  # over the four repeat buyers
    assert profiles["label"].to_dict() == {0: "lapsed", 1: "new", 2: "champions"}
    assert profiles.loc[2, "customers"] == 3
    assert profiles.loc[2, "revenue"] == 15000.0
    assert profiles["customer_share"].sum() == pytest.approx(1.0)
    assert profiles["revenue_share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert profiles.loc[2, "median_frequency"] == 28
    # Written from the segment's own numbers: who, what is at stake, what to do, what to measure.
    assert profiles.loc[2, "recommendation"] == (
        "3 customers (38% of customers, 98% of revenue: 15,000 spent); the median customer bought 28 times "
        "for 5,000, last 3 days ago (usual gap 21 days). Do: reward and retain them: loyalty perks, early "
        "access and service, not discounts. Measure: retention and spend per customer against a hold-out."
    )
    assert "bought once for 85, last 11 days ago" in profiles.loc[1, "recommendation"]


def test_repeated_labels_get_numbered_names():
    features = _customers()
    clusters = pd.DataFrame({"customer_id": list("abcdefgh"), "cluster": [0, 0, 0, 1, 3, 2, 3, 3]})
    profiles = profile_segments(features, clusters)
    assert profiles["label"].tolist() == ["champions", "lapsed", "lapsed", "new"]
    assert profiles["segment"].tolist() == ["champions", "lapsed 1", "lapsed 2", "new"]


def test_demographics_join_when_the_source_has_them():
    features = _customers()
    clusters = pd.DataFrame({"customer_id": list("abcdefgh"), "cluster": [0, 0, 0, 1, 1, 1, 1, 1]})
    people = pd.DataFrame(
        {
            "customer_id": list("abcdefgh"),
            "age": [40, 50, None, 20, 30, 30, 30, 40],
            "gender": ["female", "female", "male", "male", None, "male", "male", "female"],
        }
    )
    profiles = profile_segments(features, clusters, people).set_index("cluster")
    assert profiles.loc[0, "mean_age"] == 45.0
    assert profiles.loc[0, "female_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert profiles.loc[1, "female_share"] == 0.25
