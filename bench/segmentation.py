"""Segmentation at scale: the k sweep with both methods and every metric, against the way it was done before.

    .venv/bin/python bench/segmentation.py              # 1M customers
    .venv/bin/python bench/segmentation.py --customers 200000

The customers are six seeded groups in a three-feature model space (log R, F, M standardized, as the
pipeline clusters them). The baseline is the path before this change, measured in the same run: ten
K-Means restarts on every customer for each k, and scikit-learn's silhouette, Calinski–Harabasz and
Davies–Bouldin on each clustering. It prints both times, their ratio, and both sweeps' metrics, so "the
same results" can be read off.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retail_seg.core import clustering, segmentation

CENTRES = np.array(
    [
        [-1.6, 1.8, 1.7],
        [-0.8, 0.9, 0.6],
        [0.2, -0.3, 1.2],
        [-1.0, -1.0, -0.9],
        [1.3, 0.2, -0.2],
        [1.5, -1.1, -1.4],
    ]
)


def customers(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, len(CENTRES), n)
    return CENTRES[group] + rng.normal(0, 0.35, (n, 3))


def before(matrix: np.ndarray, seed: int) -> pd.DataFrame:
    """The previous path: every restart on every customer, scikit-learn's metric functions."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    sample = clustering.silhouette_sample(matrix, seed)
    rows = []
    for k in range(2, 11):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix).labels_
        rows.append(
            {
                "k": k,
                "inertia": sum(
                    ((matrix[labels == c] - matrix[labels == c].mean(axis=0)) ** 2).sum() for c in range(k)
                ),
                "silhouette": silhouette_score(sample.distances, labels[sample.rows], metric="precomputed"),
                "calinski_harabasz": calinski_harabasz_score(matrix, labels),
                "davies_bouldin": davies_bouldin_score(matrix, labels),
            }
        )
    # Ward, as before and as now (its micro-clusters did not change).
    segmentation.sweep_ward(matrix, range(2, 11), seed, sample=sample)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    matrix = customers(args.customers)
    start = time.perf_counter()
    baseline = before(matrix, seed=42)
    baseline_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = segmentation.segment(matrix, np.exp(matrix[:, 2]), range(2, 11), seed=42)
    seconds = time.perf_counter() - start
    now = result.k_table[result.k_table["method"] == "kmeans"].reset_index(drop=True)
    print(
        f"{args.customers:,} customers: before {baseline_seconds:.1f} s, now {seconds:.1f} s "
        f"({baseline_seconds / seconds:.1f}× faster); chosen k = {result.chosen_k}, {result.method}"
    )
    joined = baseline.merge(now, on="k", suffixes=(" before", " now"))
    columns = ["k", *(f"{m} {when}" for m in clustering.METRIC_COLUMNS for when in ("before", "now"))]
    with pd.option_context("display.width", 200):
        print(joined[columns].round(4).to_string(index=False))


if __name__ == "__main__":
    main()
