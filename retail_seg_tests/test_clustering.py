"""K-Means, Ward and the comparison between them find structure that is really there."""

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from retail_seg.core import clustering
from retail_seg.core.clustering import (
    choose_k,
    cluster_metrics,
    find_knee,
    fit_kmeans,
    order_by_value,
    silhouette_sample,
    sweep_kmeans,
    usable_k,
    within_cluster_sum_of_squares,
)
from retail_seg.core.hierarchical import cut_tree, grow_tree, micro_clusters, sweep_ward, weighted_ward
from retail_seg.core.segmentation import choose_method, crosstab, segment
from retail_seg_tests.blobs import THREE_GROUPS, blobs, matrix


def test_find_knee_on_a_constructed_curve():
    ks = np.arange(2, 11)
    # Steep until k = 5, then nearly flat: the bend is at 5.
    inertia = np.array([1000, 700, 420, 150, 140, 132, 125, 119, 114])
    assert find_knee(ks, inertia) == 5


def test_find_knee_on_a_smooth_hyperbola():
    ks = np.arange(1, 21)
    assert find_knee(ks, 100 / ks) in (4, 5)


@pytest.fixture(scope="module")
def three():
    data = blobs(*THREE_GROUPS)
    return data, matrix(data)


def test_kmeans_sweep_reports_every_metric_and_finds_the_groups(three):
    data, x = three
    table, labels = sweep_kmeans(x, range(2, 11), seed=1)
    assert table["k"].tolist() == list(range(2, 11))
    assert table.notna().all().all()
    assert find_knee(table["k"].to_numpy(), table["inertia"].to_numpy()) == 3
    best = table.loc[table["silhouette"].idxmax()]
    assert best["k"] == 3 and best["davies_bouldin"] == table["davies_bouldin"].min()
    assert adjusted_rand_score(data["group"], labels[3]) > 0.95


def test_ward_exact_and_on_micro_clusters_both_find_the_groups(three):
    data, x = three
    exact = grow_tree(x, seed=0)
    assert exact.exact and exact.leaves == len(x)
    micro = grow_tree(x, seed=0, max_points=120, micro=60)
    assert not micro.exact and micro.leaves <= 60 and micro.linkage.shape == (micro.leaves - 1, 4)
    assert micro.customers_under()[-1] == len(x)  # the root holds every customer
    for tree in (exact, micro):
        labels = cut_tree(tree, 3)
        assert len(labels) == len(x) and set(labels) == {0, 1, 2}
        assert adjusted_rand_score(data["group"], labels) > 0.95


def test_weighted_ward_with_unit_weights_is_scipys_ward():
    points = np.random.default_rng(3).normal(size=(300, 3))
    np.testing.assert_allclose(weighted_ward(points, np.ones(300)), linkage(points, "ward"), atol=1e-9)


def test_weighted_ward_equals_ward_on_the_customers_a_weight_stands_for():
    rng = np.random.default_rng(4)
    points, weights = rng.normal(size=(120, 3)), rng.integers(1, 6, size=120)
    customers = np.repeat(points, weights, axis=0)
    reference = linkage(customers, "ward")
    weighted = weighted_ward(points, weights)
    # Ward merges identical customers first, at height 0; every merge after that is the weighted tree's.
    np.testing.assert_allclose(np.sort(weighted[:, 2]), reference[reference[:, 2] > 1e-12, 2], atol=1e-9)
    for k in range(2, 11):
        expected = fcluster(reference, k, "maxclust")
        assert adjusted_rand_score(expected, np.repeat(fcluster(weighted, k, "maxclust"), weights)) == 1.0


def test_micro_clusters_partition_every_row_and_centre_on_their_members():
    x = np.random.default_rng(5).normal(size=(2_000, 3))
    centroids, sizes, leaf_of = micro_clusters(x, 50, seed=0)
    assert sizes.sum() == len(x) and (sizes > 0).all() and len(centroids) == len(sizes) <= 50
    np.testing.assert_allclose(centroids[7], x[leaf_of == 7].mean(axis=0))
    # Each row sits with its nearest fitted centre: the k-d tree agrees with K-Means' own predict.
    sample = x[np.random.default_rng(0).choice(len(x), size=500, replace=False)]
    fitted = KMeans(n_clusters=50, n_init=1, max_iter=20, random_state=0).fit(sample)
    np.testing.assert_array_equal(leaf_of, np.unique(fitted.predict(x), return_inverse=True)[1])


def test_ward_sweep_matches_kmeans_columns(three):
    _, x = three
    table, labels, _ = sweep_ward(x, range(2, 6), seed=0)
    kmeans_table, _ = sweep_kmeans(x, range(2, 6), seed=0)
    assert table.columns.tolist() == kmeans_table.columns.tolist()
    assert sorted(labels) == [2, 3, 4, 5]


def test_cluster_ids_are_ordered_by_spend():
    labels = np.array([0, 0, 1, 1, 2])
    spend = np.array([10.0, 12.0, 500.0, 700.0, 60.0])
    assert order_by_value(labels, spend).tolist() == [2, 2, 0, 0, 1]


def test_metrics_of_a_single_cluster_are_undefined_not_an_error():
    points = np.random.default_rng(0).normal(size=(20, 2))
    metrics = cluster_metrics(points, np.zeros(20, dtype=int), silhouette_sample(points, seed=0))
    assert np.isnan(metrics["silhouette"]) and metrics["inertia"] > 0


def test_silhouette_is_exact_up_to_the_sample_size_and_seeded_beyond():
    points = np.random.default_rng(1).normal(size=(300, 3))
    labels = (points[:, 0] > 0).astype(int)
    exact = cluster_metrics(points, labels, silhouette_sample(points, seed=0))["silhouette"]
    assert exact == pytest.approx(silhouette_score(points, labels), abs=1e-5)  # float32 distances
    small = silhouette_sample(points, seed=0, size=100)
    assert len(small.rows) == 100 and small.distances.shape == (100, 100)
    assert np.array_equal(small.rows, silhouette_sample(points, seed=0, size=100).rows)
    assert cluster_metrics(points, labels, small)["silhouette"] == pytest.approx(exact, abs=0.05)


def _sweep(inertia, silhouette, calinski_harabasz, davies_bouldin):
    return pd.DataFrame(
        {
            "k": range(2, 2 + len(inertia)),
            "inertia": inertia,
            "silhouette": silhouette,
            "calinski_harabasz": calinski_harabasz,
            "davies_bouldin": davies_bouldin,
        }
    )


# The elbow of this inertia curve is at k = 4.
INERTIA = [100.0, 60.0, 20.0, 17.0, 15.0, 14.0]


def test_the_scores_overrule_the_elbow_when_a_majority_agrees():
    sweep = _sweep(
        INERTIA, [0.4, 0.5, 0.55, 0.6, 0.5, 0.4], [10, 20, 30, 40, 35, 30], [1.0, 0.9, 0.8, 0.6, 0.7, 0.8]
    )
    choice = choose_k(sweep)
    assert choice.preferred == {"elbow": 4, "silhouette": 5, "calinski_harabasz": 5, "davies_bouldin": 5}
    assert choice.k == 5
    assert "overruling the elbow's k = 4: preferred by silhouette, Calinski–Harabasz and Davies–Bouldin" in (
        choice.reason
    )


def test_the_elbow_stands_when_the_scores_disagree():
    sweep = _sweep(
        INERTIA, [0.4, 0.5, 0.55, 0.6, 0.5, 0.4], [10, 20, 30, 40, 45, 50], [1.0, 0.5, 0.8, 0.9, 0.7, 0.8]
    )
    choice = choose_k(sweep)
    assert choice.preferred == {"elbow": 4, "silhouette": 5, "calinski_harabasz": 7, "davies_bouldin": 3}
    assert choice.k == 4 and "the scores do not agree on another" in choice.reason


def test_a_tie_goes_to_silhouette():
    sweep = _sweep(
        INERTIA, [0.4, 0.5, 0.55, 0.6, 0.5, 0.4], [10, 20, 50, 40, 35, 30], [1.0, 0.9, 0.8, 0.6, 0.7, 0.8]
    )
    choice = choose_k(sweep)
    assert choice.preferred == {"elbow": 4, "silhouette": 5, "calinski_harabasz": 4, "davies_bouldin": 5}
    assert choice.k == 5


def test_confirmed_elbow():
    sweep = _sweep(
        INERTIA, [0.4, 0.5, 0.65, 0.6, 0.5, 0.4], [10, 20, 50, 40, 35, 30], [1.0, 0.9, 0.5, 0.6, 0.7, 0.8]
    )
    choice = choose_k(sweep)
    assert (
        choice.k == 4
        and "the elbow's k, confirmed by silhouette, Calinski–Harabasz and Davies–Bouldin" in (choice.reason)
    )


def test_k_stops_below_the_number_of_customers():
    assert usable_k(range(2, 11), 5) == [2, 3, 4]
    assert usable_k(range(2, 11), 2) == []


def test_segment_compares_methods_and_publishes_the_better(three):
    data, x = three
    result = segment(x, data["monetary"].to_numpy(), range(2, 11), seed=1)
    assert result.chosen_k == 3
    assert set(result.k_table["method"]) == {"kmeans", "ward"}
    assert result.k_table["chosen"].sum() == 2  # k = 3 for each method
    scores = result.comparison.set_index("method")["silhouette"]
    assert result.method == scores.idxmax() or scores["kmeans"] == scores["ward"]
    assert result.comparison["selected"].sum() == 1
    assert result.agreement > 0.95
    top = result.clusters[data["group"].to_numpy() == 0]
    assert (top == 0).all()  # the big spenders are cluster 0


def test_configured_method_wins_over_silhouette():
    comparison = pd.DataFrame({"method": ["kmeans", "ward"], "k": [4, 4], "silhouette": [0.5, 0.6]})
    assert choose_method(comparison, "auto")[0] == "ward"
    method, reason = choose_method(comparison, "kmeans")
    assert method == "kmeans" and reason.startswith("configured")
    tie = comparison.assign(silhouette=0.5)
    assert choose_method(tie, "auto")[0] == "kmeans"


def test_segment_is_deterministic_for_a_seed():
    data = blobs([100, 100], [(5, 20, 2000), (200, 2, 50)])
    first = segment(matrix(data), data["monetary"].to_numpy(), range(2, 6), seed=3)
    second = segment(matrix(data), data["monetary"].to_numpy(), range(2, 6), seed=3)
    assert np.array_equal(first.clusters, second.clusters)
    pd.testing.assert_frame_equal(first.k_table, second.k_table)


def test_a_tiny_ward_limit_still_cuts_every_k(three):
    data, x = three
    result = segment(x, data["monetary"].to_numpy(), range(2, 11), seed=1, ward_max_points=3)
    assert result.tree.leaves == len(x)  # fewer customers than micro-clusters: one each, not three
    assert sorted(result.k_table.loc[result.k_table["method"] == "ward", "k"]) == list(range(2, 11))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # K-Means says the same
def test_fewer_distinct_profiles_than_k_is_a_clear_error():
    x = np.repeat(np.eye(3), 40, axis=0)  # 120 customers, three distinct profiles
    words = r"Ward cannot form k = \d clusters: the 120 customers have only 3 distinct profiles"
    with pytest.raises(ValueError, match=words):
        segment(x, np.ones(len(x)), range(4, 6), seed=0, ward_max_points=10)


def test_too_few_customers_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3 customers, got 2"):
        segment(np.zeros((2, 3)), np.ones(2), range(2, 11), seed=0)


def test_crosstab_counts_customers_per_cluster_and_rfm_segment():
    table = crosstab(
        pd.Series([0, 0, 1, 1, 1]), pd.Series(["Champions", "Champions", "At Risk", "Champions", "At Risk"])
    )
    assert {tuple(r) for r in table.itertuples(index=False)} == {
        (0, "Champions", 2),
        (1, "At Risk", 2),
        (1, "Champions", 1),
    }


def test_the_metrics_are_scikit_learns(three):
    """cluster_metrics computes inertia, silhouette, Calinski–Harabasz and Davies–Bouldin in one pass over
    the customers; each is the number scikit-learn's own function gives, a singleton cluster included."""
    _, x = three
    sample = silhouette_sample(x, seed=0)
    for k in (2, 3, 5):
        labels = fit_kmeans(x, k, seed=0)
        labels[0] = 99  # a cluster of one customer
        found = cluster_metrics(x, labels, sample)
        assert found["silhouette"] == pytest.approx(silhouette_score(x, labels), abs=1e-6)
        assert found["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(x, labels), rel=1e-9)
        assert found["davies_bouldin"] == pytest.approx(davies_bouldin_score(x, labels), rel=1e-9)
        assert found["inertia"] == pytest.approx(
            sum(((x[labels == c] - x[labels == c].mean(axis=0)) ** 2).sum() for c in np.unique(labels))
        )


def test_a_large_sweep_refines_restarts_made_on_a_sample(monkeypatch):
    """Past KMEANS_SAMPLE customers the ten restarts run on a sample and the best is refined on everyone:
    the clustering found is as tight as ten restarts on every customer."""
    data = blobs(*THREE_GROUPS)
    x = matrix(data)
    full = fit_kmeans(x, 3, seed=1)
    monkeypatch.setattr(clustering, "KMEANS_SAMPLE", len(x) // 4)
    sampled = fit_kmeans(x, 3, seed=1)
    assert within_cluster_sum_of_squares(x, sampled) <= within_cluster_sum_of_squares(x, full) * 1.001
    assert adjusted_rand_score(full, sampled) > 0.99
