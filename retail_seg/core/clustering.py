"""K-Means over a sweep of k, the elbow found by knee detection, and the metrics that compare clusterings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)

# Exact silhouette is quadratic in customers (61 s at 100k); above this it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 10_000
METRIC_COLUMNS = ("inertia", "silhouette", "calinski_harabasz", "davies_bouldin")


def find_knee(ks: np.ndarray, inertias: np.ndarray) -> int:
    """The k where a decreasing inertia curve bends most: farthest below the chord from first to last point.

    This is the Kneedle idea (Satopää et al., 2011) on a curve normalized to the unit square.
    """
    ks = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    if len(ks) < 3:
        return int(ks[0])
    x_norm = (ks - ks[0]) / (ks[-1] - ks[0])
    spread = y[0] - y[-1]
    y_norm = (y - y[-1]) / spread if spread > 0 else np.zeros_like(y)
    chord = 1.0 - x_norm
    return int(ks[int(np.argmax(chord - y_norm))])


def within_cluster_sum_of_squares(matrix: np.ndarray, labels: np.ndarray) -> float:
    """Inertia of any labelling: squared distances to each cluster's mean, summed."""
    total = 0.0
    for label in np.unique(labels):
        members = matrix[labels == label]
        total += float(((members - members.mean(axis=0)) ** 2).sum())
    return total


@dataclass(frozen=True)
class SilhouetteSample:
    """The customers silhouette is measured on and their pairwise distances, computed once per sweep.

    Every labelling of a sweep (each k, both methods) is scored on the same customers, so their
    silhouettes differ by the clustering, not by the draw; and the quadratic distance work is paid
    once instead of eighteen times.
    """

    rows: np.ndarray
    distances: np.ndarray


def silhouette_sample(matrix: np.ndarray, seed: int, size: int = SILHOUETTE_SAMPLE) -> SilhouetteSample:
    """Every customer up to `size`, beyond that a seeded sample of `size`, with float32 distances."""
    rows = np.arange(len(matrix))
    if len(matrix) > size:
        rows = np.sort(np.random.default_rng(seed).choice(len(matrix), size=size, replace=False))
    return SilhouetteSample(rows, pairwise_distances(matrix[rows].astype(np.float32)))


def cluster_metrics(matrix: np.ndarray, labels: np.ndarray, sample: SilhouetteSample) -> dict[str, float]:
    """Inertia, silhouette (on `sample`), Calinski–Harabasz and Davies–Bouldin."""
    if len(np.unique(labels)) < 2:
        nan = float("nan")
        return {
            "inertia": within_cluster_sum_of_squares(matrix, labels),
            "silhouette": nan,
            "calinski_harabasz": nan,
            "davies_bouldin": nan,
        }
    sampled = labels[sample.rows]
    silhouette = (
        float(silhouette_score(sample.distances, sampled, metric="precomputed"))
        if len(np.unique(sampled)) > 1
        else float("nan")
    )
    return {
        "inertia": within_cluster_sum_of_squares(matrix, labels),
        "silhouette": silhouette,
        "calinski_harabasz": float(calinski_harabasz_score(matrix, labels)),
        "davies_bouldin": float(davies_bouldin_score(matrix, labels)),
    }


def fit_kmeans(matrix: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Labels of a seeded K-Means with enough restarts to be stable."""
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix).labels_


def usable_k(k_values: range, customers: int) -> list[int]:
    """The k of a sweep that leave at least one customer more than clusters."""
    return [k for k in k_values if 2 <= k < customers]


def sweep_kmeans(
    matrix: np.ndarray, k_values: range, seed: int, sample: SilhouetteSample | None = None
) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """K-Means for each usable k: a metrics table (k, inertia, silhouette, CH, DB) and the labels."""
    sample = sample or silhouette_sample(matrix, seed)
    labels = {k: fit_kmeans(matrix, k, seed) for k in usable_k(k_values, len(matrix))}
    rows = [{"k": k, **cluster_metrics(matrix, found, sample)} for k, found in labels.items()]
    return pd.DataFrame(rows, columns=["k", *METRIC_COLUMNS]), labels


def order_by_value(labels: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """Renumber clusters so cluster 0 has the highest mean spend: ids mean the same thing run to run."""
    means = pd.Series(monetary).groupby(labels).mean().sort_values(ascending=False, kind="stable")
    rank = {old: new for new, old in enumerate(means.index)}
    return np.array([rank[label] for label in labels])
