"""Segment customers: K-Means and Ward over the same k sweep, the elbow's k, and the method that wins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from retail_seg.core.clustering import (
    CRITERIA,
    METRIC_COLUMNS,
    choose_k,
    order_by_value,
    silhouette_sample,
    sweep_kmeans,
)
from retail_seg.core.hierarchical import WARD_MAX_POINTS, WardTree, sweep_ward
from retail_seg.core.identity import assign_ids
from retail_seg.core.profiles import name_segments
from retail_seg.core.tables import CUSTOMER_SEGMENTS, K_SELECTION, METHOD_COMPARISON, SEGMENT_IDENTITY, Table

METHODS = ("kmeans", "ward")
Method = Literal["auto", "kmeans", "ward"]


@dataclass(frozen=True)
class Segmentation:
    """Both methods' sweeps and labels at the chosen k, their comparison, and the method used."""

    k_table: pd.DataFrame
    chosen_k: int
    k_reason: str
    labels: dict[str, np.ndarray]
    comparison: pd.DataFrame
    agreement: float
    method: str
    method_reason: str
    tree: WardTree

    @property
    def clusters(self) -> np.ndarray:
        """The chosen method's cluster of each customer."""
        return self.labels[self.method]


def choose_method(comparison: pd.DataFrame, preference: Method) -> tuple[str, str]:
    """The method to publish and why: the configured one, or under "auto" the higher silhouette."""
    scores = comparison.set_index("method")["silhouette"]
    said = ", ".join(f"{m} {scores[m]:.3f}" for m in METHODS)
    if preference != "auto":
        return preference, f"configured (silhouette: {said})"
    best = max(METHODS, key=lambda m: (scores[m], m == "kmeans"))  # a tie keeps the simpler K-Means
    return best, f"higher silhouette at k = {int(comparison['k'].iloc[0])} ({said})"


def segment(
    matrix: np.ndarray,
    monetary: np.ndarray,
    k_values: range,
    seed: int,
    method: Method = "auto",
    ward_max_points: int = WARD_MAX_POINTS,
) -> Segmentation:
    """Sweep k with both methods, choose k from K-Means' sweep (`clustering.choose_k`), compare the methods
    there, pick one."""
    if len(matrix) < 3:
        raise ValueError(f"segmentation needs at least 3 customers, got {len(matrix)}")
    sample = silhouette_sample(matrix, seed)
    kmeans_table, kmeans_labels = sweep_kmeans(matrix, k_values, seed, sample)
    ward_table, ward_labels, tree = sweep_ward(matrix, k_values, seed, ward_max_points, sample)
    choice = choose_k(kmeans_table)
    chosen_k = choice.k
    if chosen_k not in ward_labels:
        raise ValueError(
            f"Ward cannot form k = {chosen_k} clusters: the {len(matrix):,} customers have only "
            f"{tree.leaves:,} distinct profiles"
        )
    k_reason = f"{choice.reason}, over K-Means at k = {kmeans_table['k'].min()}..{kmeans_table['k'].max()}"
    k_table = pd.concat(
        [kmeans_table.assign(method="kmeans"), ward_table.assign(method="ward")], ignore_index=True
    ).assign(chosen=lambda t: t["k"] == chosen_k)
    backers = {
        k: ", ".join(CRITERIA[c] for c, value in choice.preferred.items() if value == k)
        for k in set(choice.preferred.values())
    }
    k_table["preferred_by"] = [
        backers.get(k, "") if method == "kmeans" else ""
        for method, k in zip(k_table["method"], k_table["k"], strict=True)
    ]
    k_table = k_table[["method", "k", *METRIC_COLUMNS, "preferred_by", "chosen"]]
    labels = {
        "kmeans": order_by_value(kmeans_labels[chosen_k], monetary),
        "ward": order_by_value(ward_labels[chosen_k], monetary),
    }
    comparison = k_table[k_table["chosen"]].drop(columns="chosen").reset_index(drop=True)
    agreement = float(adjusted_rand_score(labels["kmeans"], labels["ward"]))
    chosen_method, method_reason = choose_method(comparison, method)
    comparison = comparison.drop(columns="preferred_by").assign(
        adjusted_rand_vs_other=agreement, selected=comparison["method"] == chosen_method, k_reason=k_reason
    )
    return Segmentation(
        k_table=k_table,
        chosen_k=chosen_k,
        k_reason=k_reason,
        labels=labels,
        comparison=comparison,
        agreement=agreement,
        method=chosen_method,
        method_reason=method_reason,
        tree=tree,
    )


def distances_to_centres(matrix: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's distance, in the model's space, to its own cluster's centre and to the nearest other
    centre: how firmly the customer sits in its segment (an auditor's "why here, and how close to there")."""
    found = np.unique(labels)
    centres = np.stack([matrix[labels == c].mean(axis=0) for c in found])
    distance = np.sqrt(((matrix[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    mine = np.searchsorted(found, labels)
    own = distance[np.arange(len(matrix)), mine]
    distance[np.arange(len(matrix)), mine] = np.inf
    other = distance.min(axis=1) if len(found) > 1 else np.full(len(matrix), np.nan)
    return own, other


def model_matrix(model: pd.DataFrame, customer_ids: pd.Series) -> np.ndarray:
    """The model's input columns (`<feature>_model`), one row per customer in the order of `customer_ids`."""
    ordered = model.set_index("customer_id").loc[customer_ids]
    return ordered[[c for c in ordered if c.endswith("_model")]].to_numpy()


@dataclass(frozen=True)
class SegmentedCustomers:
    """A segmentation and every customer's place in it: stable segment id, cluster, label, segment, both
    methods' clusters; and what happened to each segment id since the previous run."""

    segmentation: Segmentation
    assignments: pd.DataFrame
    identity: pd.DataFrame

    @property
    def k(self) -> int:
        return self.segmentation.chosen_k

    def frames(self) -> dict[Table, pd.DataFrame]:
        """What the segmentation publishes, by table."""
        result = self.segmentation
        return {
            K_SELECTION: result.k_table,
            METHOD_COMPARISON: result.comparison.assign(reason=result.method_reason),
            CUSTOMER_SEGMENTS: self.assignments,
            SEGMENT_IDENTITY: self.identity,
        }


def segment_customers(
    features: pd.DataFrame,
    model: pd.DataFrame,
    k_values: range,
    seed: int,
    method: Method = "auto",
    ward_max_points: int = WARD_MAX_POINTS,
    run_id: str = "",
    previous: pd.DataFrame | None = None,
    known_ids: list[str] = (),
) -> SegmentedCustomers:
    """Cluster the customers of `features` on their model input, name the clusters, give each its stable
    id against `previous` (the last run's customer_id, segment_id, segment; `identity.assign_ids`), and
    list each customer's segment id, cluster, label and segment with both methods' clusters and the named
    RFM segment."""
    matrix = model_matrix(model, features["customer_id"])
    clustered = clustered_features(model)
    # Cluster 0 has the highest mean spend; without spend (a customer table of other features), the
    # highest mean of the first feature clustered on.
    value = features["monetary"] if features["monetary"].notna().any() else features[clustered[0]]
    result = segment(
        matrix,
        value.fillna(value.median()).to_numpy(dtype=float),
        k_values,
        seed=seed,
        method=method,
        ward_max_points=ward_max_points,
    )
    own, other = distances_to_centres(matrix, result.clusters)
    clusters = pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "cluster": result.clusters,
            "kmeans_cluster": result.labels["kmeans"],
            "ward_cluster": result.labels["ward"],
            "distance_to_centre": own,
            "distance_to_nearest_other": other,
        }
    )
    assignments = (
        clusters.merge(name_segments(features, clusters[["customer_id", "cluster"]], clustered), on="cluster")
        .merge(features[["customer_id", "rfm_segment"]], on="customer_id")
        .assign(method=result.method, k=result.chosen_k, run_id=run_id)
        .sort_values("customer_id")
    )
    identity = assign_ids(assignments[["customer_id", "cluster", "segment"]], previous, list(known_ids))
    assignments["segment_id"] = assignments["cluster"].map(identity.ids)
    columns = ["customer_id", "segment_id", "cluster", "segment", "label", "rfm_segment", "method", "k"]
    return SegmentedCustomers(
        result,
        assignments[
            [
                *columns,
                "kmeans_cluster",
                "ward_cluster",
                "distance_to_centre",
                "distance_to_nearest_other",
                "run_id",
            ]
        ].reset_index(drop=True),
        identity.events,
    )


def clustered_features(model: pd.DataFrame) -> list[str]:
    """The customer features the model clusters on (its `<feature>_model` columns)."""
    return [c.removesuffix("_model") for c in model.columns if c.endswith("_model")]


def crosstab(clusters: pd.Series, rfm_segments: pd.Series) -> pd.DataFrame:
    """Customers in each cluster × named RFM segment, long format (cluster, rfm_segment, customers)."""
    table = pd.crosstab(clusters.to_numpy(), rfm_segments.to_numpy())
    table.index.name, table.columns.name = "cluster", "rfm_segment"
    return table.stack().rename("customers").reset_index().query("customers > 0").reset_index(drop=True)


def segments_by_rfm_segment(assignments: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The same counts as a grid: one row per segment in `order`, one column per named RFM segment."""
    long = crosstab(assignments["segment"], assignments["rfm_segment"])
    grid = long.pivot(index="cluster", columns="rfm_segment", values="customers").fillna(0).astype(int)
    return grid.reindex(order, fill_value=0).rename_axis(index="segment", columns=None).reset_index()
