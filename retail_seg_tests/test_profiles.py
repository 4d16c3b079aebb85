"""Profiles and their labels follow the numbers."""

import pandas as pd
import pytest

from retail_seg.core.profiles import RECOMMENDATIONS, label_clusters, label_profile, profile_segments


@pytest.mark.parametrize(
    ("z", "label"),
    [
        ((-1.0, 1.2, 1.5), "high-value"),
        ((-0.7, 0.6, 0.3), "frequent"),
        ((0.4, 0.1, 0.3), "at-risk"),
        ((1.2, -0.8, -0.9), "lapsed"),
        ((-0.4, -0.9, -0.6), "new"),
        ((0.1, -0.2, 0.9), "big-spender"),
        ((0.2, -0.3, -0.2), "low-frequency"),
    ],
)
def test_label_rules(z, label):
    assert label_profile(*z) == label


def test_only_the_strongest_high_value_cluster_keeps_the_label():
    median_z = pd.DataFrame(
        {"recency_days": [-1.2, -0.7, 1.1], "frequency": [1.9, 0.7, -0.9], "monetary": [1.6, 0.6, -0.8]}
    )
    assert label_clusters(median_z) == ["high-value", "frequent", "lapsed"]
    assert label_clusters(median_z.iloc[[1, 0, 2]]) == ["frequent", "high-value", "lapsed"]


def _customers():
    return pd.DataFrame(
        {
            "customer_id": list("abcdefgh"),
            "recency_days": [2, 3, 4, 200, 220, 250, 10, 12],
            "frequency": [30, 25, 28, 1, 2, 1, 1, 1],
            "monetary": [5000.0, 4000.0, 6000.0, 30.0, 60.0, 20.0, 80.0, 90.0],
        }
    )


def test_highest_spending_frequent_cluster_is_high_value():
    features = _customers()
    clusters = pd.DataFrame({"customer_id": list("abcdefgh"), "cluster": [2, 2, 2, 0, 0, 0, 1, 1]})
    profiles = profile_segments(features, clusters).set_index("cluster")
    assert profiles.loc[2, "label"] == "high-value"
    assert profiles.loc[0, "label"] == "lapsed"
    assert profiles.loc[2, "customers"] == 3
    assert profiles.loc[2, "revenue"] == 15000.0
    assert profiles["customer_share"].sum() == pytest.approx(1.0)
    assert profiles["revenue_share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert profiles.loc[2, "median_frequency"] == 28
    assert profiles.loc[2, "recommendation"] == RECOMMENDATIONS["high-value"]


def test_repeated_labels_get_numbered_names():
    features = _customers()
    clusters = pd.DataFrame({"customer_id": list("abcdefgh"), "cluster": [0, 0, 0, 1, 1, 2, 3, 3]})
    profiles = profile_segments(features, clusters)
    assert profiles["label"].tolist() == ["high-value", "lapsed", "lapsed", "new"]
    assert profiles["segment"].tolist() == ["high-value", "lapsed 1", "lapsed 2", "new"]


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
