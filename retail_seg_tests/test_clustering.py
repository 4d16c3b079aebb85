"""K-Means with an automatic elbow finds structure that is really there."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from retail_seg.core.clustering import find_knee, segment_customers


def test_find_knee_on_a_constructed_curve():
    ks = np.arange(2, 11)
    # Steep until k = 5, then nearly flat: the bend is at 5.
    inertia = np.array([1000, 700, 420, 150, 140, 132, 125, 119, 114])
    assert find_knee(ks, inertia) == 5


def test_find_knee_on_a_smooth_hyperbola():
    ks = np.arange(1, 21)
    assert find_knee(ks, 100 / ks) in (4, 5)


def _blobs(sizes, centres, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for group, (size, (r, f, m)) in enumerate(zip(sizes, centres, strict=True)):
        rows.append(
            pd.DataFrame(
                {
                    "recency_days": np.round(np.exp(rng.normal(np.log(r), 0.15, size))),
                    "frequency": np.maximum(1, np.round(np.exp(rng.normal(np.log(f), 0.15, size)))),
                    "monetary": np.exp(rng.normal(np.log(m), 0.15, size)),
                    "group": group,
                }
            )
        )
    data = pd.concat(rows, ignore_index=True)
    return data.assign(customer_id=[f"c{i}" for i in range(len(data))])


def test_segmentation_recovers_separated_groups():
    data = _blobs([300, 200, 250], [(5, 30, 5000), (300, 3, 200), (40, 1, 40)])
    result = segment_customers(data.drop(columns="group"), seed=1)
    assert result.chosen_k == 3
    assert adjusted_rand_score(data["group"], result.assignments["cluster"]) > 0.95
    assert result.silhouette > 0.6
    # Cluster 0 is always the highest-spending one, whatever order K-Means found them in.
    top = result.assignments.loc[data["group"] == 0, "cluster"]
    assert (top == 0).all()
    assert result.k_table["chosen"].sum() == 1
    assert result.k_table["k"].tolist() == list(range(2, 11))


def test_segmentation_is_deterministic_for_a_seed():
    data = _blobs([100, 100], [(5, 20, 2000), (200, 2, 50)]).drop(columns="group")
    first = segment_customers(data, seed=3)
    second = segment_customers(data, seed=3)
    pd.testing.assert_frame_equal(first.assignments, second.assignments)


def test_k_range_is_capped_by_customer_count():
    data = _blobs([3, 3], [(5, 20, 2000), (200, 2, 50)]).drop(columns="group")
    result = segment_customers(data, seed=0)
    assert result.k_table["k"].max() == 5
    assert len(result.assignments) == 6


def test_too_few_customers_is_a_clear_error():
    data = _blobs([1, 1], [(5, 20, 2000), (200, 2, 50)]).drop(columns="group")
    with pytest.raises(ValueError, match="at least 3 customers, got 2"):
        segment_customers(data)
