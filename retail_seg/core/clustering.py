"""K-Means over a sweep of k, the elbow found by knee detection, and the metrics that compare clusterings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from threadpoolctl import threadpool_limits

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


# The criteria that name a k, as a reader sees them: the elbow proposes, the three internal scores vote.
CRITERIA = {
    "elbow": "the elbow",
    "silhouette": "silhouette",
    "calinski_harabasz": "Calinski–Harabasz",
    "davies_bouldin": "Davies–Bouldin",
}


@dataclass(frozen=True)
class KChoice:
    """The k a sweep settles on, the k each criterion preferred, and why the chosen one won."""

    k: int
    preferred: dict[str, int]
    reason: str


def choose_k(table: pd.DataFrame) -> KChoice:
    """The elbow of the inertia proposes k; silhouette, Calinski–Harabasz and Davies–Bouldin confirm it or
    overrule it.

    Each of the four criteria names its k (the elbow; the highest silhouette and Calinski–Harabasz; the
    lowest Davies–Bouldin). The k named by the most criteria wins, if at least two name it; in a tie,
    silhouette's k. When no two agree, the elbow's k stands.
    """
    scores = table.set_index("k")
    preferred = {"elbow": find_knee(scores.index.to_numpy(), scores["inertia"].to_numpy())}
    for criterion, best in (
        ("silhouette", "idxmax"),
        ("calinski_harabasz", "idxmax"),
        ("davies_bouldin", "idxmin"),
    ):
        column = scores[criterion].dropna()
        if len(column):
            preferred[criterion] = int(getattr(column, best)())
    votes = pd.Series(list(preferred.values())).value_counts()
    tied = [int(k) for k in votes.index[votes == votes.max()]]
    if votes.max() < 2:
        k = preferred["elbow"]
    elif len(tied) == 1:
        k = tied[0]
    else:
        k = preferred["silhouette"] if preferred.get("silhouette") in tied else preferred["elbow"]
    backers = [CRITERIA[c] for c, value in preferred.items() if value == k and c != "elbow"]
    if preferred["elbow"] != k:
        verdict = f"overruling the elbow's k = {preferred['elbow']}: preferred by {_listed(backers)}"
    elif backers:
        verdict = f"the elbow's k, confirmed by {_listed(backers)}"
    else:
        verdict = "the elbow's k: the scores do not agree on another"
    said = ", ".join(f"{CRITERIA[c]} {value}" for c, value in preferred.items())
    return KChoice(k, preferred, f"k = {k}, {verdict} (k preferred by {said})")


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class _Clusters:
    """A labelling's clusters in one pass over the customers: sizes, centroids, and how far each customer
    sits from its own centroid. Every metric below is read from these, not recomputed per cluster."""

    sizes: np.ndarray
    centroids: np.ndarray
    squared: np.ndarray
    """each customer's squared distance to its centroid"""
    codes: np.ndarray

    @classmethod
    def of(cls, matrix: np.ndarray, labels: np.ndarray) -> _Clusters:
        _, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
        sums = np.column_stack(
            [np.bincount(codes, weights=column, minlength=len(sizes)) for column in matrix.T]
        )
        centroids = sums / sizes[:, None]
        squared = ((matrix - centroids[codes]) ** 2).sum(axis=1)
        return cls(sizes, centroids, squared, codes)


def within_cluster_sum_of_squares(matrix: np.ndarray, labels: np.ndarray) -> float:
    """Inertia of any labelling: squared distances to each cluster's mean, summed."""
    return float(_Clusters.of(matrix, labels).squared.sum())


def _calinski_harabasz(matrix: np.ndarray, clusters: _Clusters) -> float:
    """Between-cluster over within-cluster dispersion, each per degree of freedom (as scikit-learn's)."""
    n, k = len(matrix), len(clusters.sizes)
    within = clusters.squared.sum()
    between = float((clusters.sizes * ((clusters.centroids - matrix.mean(axis=0)) ** 2).sum(axis=1)).sum())
    return 1.0 if within == 0 else between * (n - k) / (within * (k - 1))


def _davies_bouldin(clusters: _Clusters) -> float:
    """The mean over clusters of the worst ratio of two clusters' spreads to their centroids' distance."""
    spread = np.bincount(clusters.codes, weights=np.sqrt(clusters.squared)) / clusters.sizes
    apart = np.sqrt(((clusters.centroids[:, None, :] - clusters.centroids[None, :, :]) ** 2).sum(axis=2))
    if np.allclose(spread, 0) or np.allclose(apart, 0):
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (spread[:, None] + spread[None, :]) / apart
    ratio[~np.isfinite(ratio)] = 0  # a cluster against itself, or two at one point (as scikit-learn's)
    np.fill_diagonal(ratio, 0)
    return float(ratio.max(axis=1).mean())


def _silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from precomputed distances: each customer's summed distance to every cluster is one
    matrix product, not a pass over the distances per cluster."""
    _, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    members = np.zeros((len(labels), len(sizes)), dtype=distances.dtype)
    members[np.arange(len(labels)), codes] = 1
    summed = (distances @ members).astype(float)
    own = summed[np.arange(len(labels)), codes]
    alone = sizes[codes] == 1
    inside = np.where(alone, 0.0, own / np.maximum(sizes[codes] - 1, 1))
    between = summed / sizes
    between[np.arange(len(labels)), codes] = np.inf
    nearest = between.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (nearest - inside) / np.maximum(inside, nearest)
    return float(np.where(alone, 0.0, np.nan_to_num(score)).mean())


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
    """Inertia, silhouette (on `sample`), Calinski–Harabasz and Davies–Bouldin, as scikit-learn defines
    them, from one pass over the customers (`_Clusters`)."""
    clusters = _Clusters.of(matrix, labels)
    inertia = float(clusters.squared.sum())
    if len(clusters.sizes) < 2:
        nan = float("nan")
        return {"inertia": inertia, "silhouette": nan, "calinski_harabasz": nan, "davies_bouldin": nan}
    sampled = labels[sample.rows]
    silhouette = _silhouette(sample.distances, sampled) if len(np.unique(sampled)) > 1 else float("nan")
    return {
        "inertia": inertia,
        "silhouette": silhouette,
        "calinski_harabasz": _calinski_harabasz(matrix, clusters),
        "davies_bouldin": _davies_bouldin(clusters),
    }


# Past this many customers, K-Means' ten restarts run on a seeded sample of this size, and the best of
# them is refined on every customer: the restarts only choose where Lloyd's iterations start.
KMEANS_SAMPLE = 50_000


def fit_kmeans(matrix: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Labels of a seeded K-Means with enough restarts to be stable (ten, the best by inertia).

    Lloyd's iterations run on one thread. scikit-learn shares each iteration out in chunks of 256
    customers, and with a sweep's few clusters over a few features a chunk is too little work to pay for
    the threads' synchronisation: on two cores one thread was 2.3x faster at 34,000 customers and 1.7x at
    1,000,000, with the same labels (a fit with 2,000 clusters, as Ward's micro-clusters, still gains from
    both cores, so only the sweep is held to one).
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        if len(matrix) <= KMEANS_SAMPLE:
            return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix).labels_
        rows = np.random.default_rng(seed).choice(len(matrix), size=KMEANS_SAMPLE, replace=False)
        start = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix[rows]).cluster_centers_
        return KMeans(n_clusters=k, init=start, n_init=1, random_state=seed).fit(matrix).labels_


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
