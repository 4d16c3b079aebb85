"""K-Means on standardized log features, with k chosen by the elbow of the inertia curve."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

# Exact silhouette is quadratic in customers; above this, it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 10_000


@dataclass(frozen=True)
class Segmentation:
    """A K-Means segmentation and the sweep that chose its k."""

    assignments: pd.DataFrame
    k_table: pd.DataFrame
    chosen_k: int
    silhouette: float
    model_matrix: np.ndarray


def model_matrix(features: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Standardized log1p of the model features.

    Spend and frequency are heavy-tailed: without the log, a few wholesale buyers would each get a
    cluster of their own and everyone else would share one.
    """
    logged = np.log1p(features[list(columns)].to_numpy(dtype=float))
    return StandardScaler().fit_transform(logged)


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


def silhouette(matrix: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Silhouette score, on a seeded sample when exact would be too slow."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    sample = SILHOUETTE_SAMPLE if len(matrix) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(matrix, labels, sample_size=sample, random_state=seed))


def fit_kmeans(matrix: np.ndarray, k: int, seed: int) -> KMeans:
    """A seeded K-Means with enough restarts to be stable."""
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix)


def sweep_k(matrix: np.ndarray, k_values: range, seed: int) -> pd.DataFrame:
    """Inertia and silhouette of K-Means for each k that the number of customers allows."""
    rows = []
    for k in k_values:
        if k >= len(matrix):
            break
        model = fit_kmeans(matrix, k, seed)
        rows.append(
            {"k": k, "inertia": float(model.inertia_), "silhouette": silhouette(matrix, model.labels_, seed)}
        )
    return pd.DataFrame(rows, columns=["k", "inertia", "silhouette"])


def _ordered_by_value(labels: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """Renumber clusters so cluster 0 has the highest mean spend: ids mean the same thing run to run."""
    means = pd.Series(monetary).groupby(labels).mean().sort_values(ascending=False)
    rank = {old: new for new, old in enumerate(means.index)}
    return np.array([rank[label] for label in labels])


def segment_customers(
    features: pd.DataFrame,
    columns: tuple[str, ...] = ("recency_days", "frequency", "monetary"),
    k_values: range = range(2, 11),
    seed: int = 42,
) -> Segmentation:
    """Sweep k, pick the elbow, and assign every customer to a cluster of the chosen k."""
    if len(features) < 3:
        raise ValueError(f"segmentation needs at least 3 customers, got {len(features)}")
    matrix = model_matrix(features, columns)
    k_table = sweep_k(matrix, k_values, seed)
    chosen_k = find_knee(k_table["k"].to_numpy(), k_table["inertia"].to_numpy())
    model = fit_kmeans(matrix, chosen_k, seed)
    clusters = _ordered_by_value(model.labels_, features["monetary"].to_numpy())
    assignments = pd.DataFrame({"customer_id": features["customer_id"].to_numpy(), "cluster": clusters})
    return Segmentation(
        assignments=assignments,
        k_table=k_table.assign(chosen=k_table["k"] == chosen_k),
        chosen_k=chosen_k,
        silhouette=silhouette(matrix, clusters, seed),
        model_matrix=matrix,
    )
