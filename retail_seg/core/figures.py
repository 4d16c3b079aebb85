"""Segmentation figures, built with matplotlib's object API (no pyplot) so no global state leaks.

A segment has the same colour in every figure: colours follow cluster order (0 = highest spend).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import dendrogram as scipy_dendrogram
from sklearn.decomposition import PCA

from retail_seg.core.audit import Migration
from retail_seg.core.frames import merge_one_to_one
from retail_seg.core.hierarchical import WardTree
from retail_seg.core.segmentation import SegmentedCustomers, clustered_features, model_matrix

# Figures an asset draws: file name → (caption, figure).
Captioned = dict[str, tuple[str, Figure]]

PALETTE = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#666666",
    "#1f78b4",
    "#b2df8a",
)
METHOD_STYLE = {"kmeans": ("K-Means", "o", "-"), "ward": ("Ward", "s", "--")}


def colours(segments_in_cluster_order: list[str]) -> dict[str, str]:
    """One colour per segment, stable across figures."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(segments_in_cluster_order)}


def elbow_curve(k_table: pd.DataFrame, chosen_k: int) -> Figure:
    """Inertia (the elbow) and silhouette against k for each method, with the chosen k marked."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    inertia_ax, silhouette_ax = fig.subplots(1, 2)
    for method, rows in k_table.groupby("method", sort=True):
        label, marker, line = METHOD_STYLE.get(method, (method, "o", "-"))
        inertia_ax.plot(rows["k"], rows["inertia"], marker=marker, linestyle=line, label=label)
        silhouette_ax.plot(rows["k"], rows["silhouette"], marker=marker, linestyle=line, label=label)
    for ax in (inertia_ax, silhouette_ax):
        ax.axvline(chosen_k, color="grey", linestyle=":", label=f"chosen k = {chosen_k}")
        ax.set_xlabel("number of clusters k")
        ax.legend()
    inertia_ax.set_ylabel("inertia (within-cluster sum of squares)")
    inertia_ax.set_title("Elbow method: inertia by k")
    silhouette_ax.set_ylabel("silhouette score (higher is better)")
    silhouette_ax.set_title("Silhouette by k")
    return fig


def cluster_scatter(
    features: pd.DataFrame, segments: pd.Series, order: list[str], max_points: int = 20_000, seed: int = 0
) -> Figure:
    """Customers on log axes (recency vs spend, frequency vs spend), coloured by segment."""
    data = features.assign(segment=segments.to_numpy())
    if len(data) > max_points:
        data = data.sample(max_points, random_state=seed)
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    for name, colour in colours(order).items():
        group = data[data["segment"] == name]
        left.scatter(group["recency_days"] + 1, group["monetary"], s=6, alpha=0.5, color=colour, label=name)
        right.scatter(group["frequency"], group["monetary"], s=6, alpha=0.5, color=colour, label=name)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("net spend (log scale)")
    left.set_xlabel("days since last purchase + 1 (log scale)")
    right.set_xlabel("purchase invoices (log scale)")
    left.set_title("Recency vs spend")
    right.set_title("Frequency vs spend")
    right.legend(title="segment", markerscale=3, loc="lower right", fontsize="small")
    fig.suptitle(f"Customer segments ({len(features):,} customers)")
    return fig


def feature_scatter(
    features: pd.DataFrame, axes: list[str], segments: pd.Series, order: list[str], max_points: int = 20_000
) -> Figure:
    """Customers on two of the features they were clustered on (a customer table without R/F/M), by
    segment: for the Mall table, the textbook's income against spending score."""
    data = features.assign(segment=segments.to_numpy())
    if len(data) > max_points:
        data = data.sample(max_points, random_state=0)
    x, y = (axes + axes)[:2]
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    for name, colour in colours(order).items():
        group = data[data["segment"] == name]
        ax.scatter(group[x], group[y], s=14, alpha=0.7, color=colour, label=name)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.legend(title="segment", fontsize="small")
    ax.set_title(f"Customer segments ({len(features):,} customers)")
    return fig


def pca_scatter(
    matrix: np.ndarray, segments: pd.Series, order: list[str], max_points: int = 20_000, seed: int = 0
) -> Figure:
    """The model input projected on its first two principal components, coloured by segment."""
    pca = PCA(n_components=2, random_state=seed).fit(matrix)
    points = pca.transform(matrix)
    keep = np.arange(len(points))
    if len(points) > max_points:
        keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
    labels = segments.to_numpy()[keep]
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    ax = fig.subplots()
    for name, colour in colours(order).items():
        mask = labels == name
        ax.scatter(points[keep][mask, 0], points[keep][mask, 1], s=6, alpha=0.5, color=colour, label=name)
    share = pca.explained_variance_ratio_
    ax.set_xlabel(f"principal component 1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"principal component 2 ({share[1]:.0%} of variance)")
    ax.set_title("Segments in the model's feature space (PCA, 2-D)")
    ax.legend(title="segment", markerscale=3, fontsize="small")
    return fig


def _segment_bar(profiles: pd.DataFrame, column: str, title: str, ylabel: str, percent: bool) -> Figure:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    values = profiles[column] * (100 if percent else 1)
    palette = colours(profiles["segment"].tolist())
    bars = ax.bar(profiles["segment"], values, color=[palette[s] for s in profiles["segment"]])
    ax.bar_label(bars, fmt="%.1f%%" if percent else "{:,.0f}")
    ax.set_title(title)
    ax.set_xlabel("segment")
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def segment_sizes(profiles: pd.DataFrame) -> Figure:
    """Customers per segment."""
    return _segment_bar(profiles, "customers", "Customers per segment", "customers", percent=False)


def segment_revenue(profiles: pd.DataFrame) -> Figure:
    """Share of net revenue per segment."""
    return _segment_bar(
        profiles, "revenue_share", "Share of net revenue by segment", "% of net revenue", True
    )


def rfm_heatmap(features: pd.DataFrame) -> Figure:
    """Mean net spend in each R × F score cell, with the number of customers in it."""
    grid = features.pivot_table(
        index="r_score", columns="f_score", values="monetary", aggfunc=["mean", "size"]
    )
    means = grid["mean"].reindex(index=range(5, 0, -1), columns=range(1, 6))
    sizes = grid["size"].reindex(index=range(5, 0, -1), columns=range(1, 6)).fillna(0)
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(means.to_numpy(dtype=float), cmap="viridis")
    for (row, col), value in np.ndenumerate(means.to_numpy(dtype=float)):
        if not np.isnan(value):
            text = f"{value:,.0f}\n{int(sizes.iloc[row, col]):,} cust."
            bright = value > 0.6 * np.nanmax(means.to_numpy(dtype=float))
            ax.text(
                col, row, text, ha="center", va="center", fontsize=8, color="black" if bright else "white"
            )
    ax.set_xticks(range(5), labels=[str(f) for f in range(1, 6)])
    ax.set_yticks(range(5), labels=[str(r) for r in range(5, 0, -1)])
    ax.set_xlabel("frequency score (5 = most frequent)")
    ax.set_ylabel("recency score (5 = most recent)")
    ax.set_title("RFM grid: mean net spend per R × F cell")
    fig.colorbar(image, ax=ax, label="mean net spend")
    return fig


def dendrogram(tree: WardTree, k: int, leaves: int = 30) -> Figure:
    """The top of the Ward tree, cut where it gives k clusters."""
    merges = tree.linkage[:, 2]
    cut = (merges[-k] + merges[-(k - 1)]) / 2 if 2 <= k <= len(merges) else None
    under = tree.customers_under()
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    scipy_dendrogram(
        tree.linkage,
        truncate_mode="lastp",
        p=leaves,
        ax=ax,
        color_threshold=cut,
        leaf_label_func=lambda node: f"({under[node]:,})",
        leaf_rotation=90,
        leaf_font_size=7,
    )
    if cut is not None:
        ax.axhline(cut, color="grey", linestyle="--", label=f"cut for k = {k}")
        ax.legend()
    ax.set_xlabel("branches (customers in brackets)")
    ax.set_ylabel("Ward merge distance")
    grown_on = "" if tree.exact else f", grown on {tree.leaves:,} micro-clusters"
    ax.set_title(f"Ward hierarchical clustering ({tree.customers:,} customers{grown_on})")
    return fig


def migration_heatmap(matrix: pd.DataFrame) -> Figure:
    """Customers moving from each previous segment (rows) to each current segment (columns)."""
    named = matrix.assign(
        from_segment=matrix["from_segment_id"].astype(str) + " " + matrix["from_segment"].astype(str),
        to_segment=matrix["to_segment_id"].astype(str) + " " + matrix["to_segment"].astype(str),
    )
    grid = named.pivot_table(
        index="from_segment", columns="to_segment", values="customers", aggfunc="sum", fill_value=0
    )
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="Blues")
    top = grid.to_numpy().max() or 1
    for (row, col), value in np.ndenumerate(grid.to_numpy()):
        ax.text(
            col,
            row,
            f"{value:,}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > 0.6 * top else "black",
        )
    ax.set_xticks(range(len(grid.columns)), labels=grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(grid.index)), labels=grid.index)
    ax.set_xlabel("segment in this run")
    ax.set_ylabel("segment in the previous run")
    ax.set_title(
        f"Segment migration since the previous run ({int(grid.to_numpy().sum()):,} customers in both)"
    )
    fig.colorbar(image, ax=ax, label="customers")
    return fig


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """A figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def segmentation_figures(
    segmented: SegmentedCustomers, features: pd.DataFrame, model: pd.DataFrame
) -> dict[str, Captioned]:
    """The segmentation's figures by the asset they belong to: how k was chosen (k_selection), the
    alternative method's tree cut at that k (method_comparison), and the customers drawn by segment in
    their features and in the model's space (customer_segments)."""
    result, assignments = segmented.segmentation, segmented.assignments
    placed = merge_one_to_one(features, assignments[["customer_id", "segment"]])
    order = assignments.drop_duplicates("cluster").sort_values("cluster")["segment"].tolist()
    projected = pca_scatter(model_matrix(model, placed["customer_id"]), placed["segment"], order)
    return {
        "k_selection": {
            "elbow_curve": (
                "Elbow method and silhouette by k, K-Means and Ward",
                elbow_curve(result.k_table, segmented.k),
            )
        },
        "method_comparison": {
            "dendrogram": (
                "Ward dendrogram (top of the tree), cut at the chosen k",
                dendrogram(result.tree, segmented.k),
            )
        },
        "customer_segments": {
            "cluster_scatter": (
                "Customers by recency, frequency and spend",
                cluster_scatter(placed, placed["segment"], order),
            )
            if placed["monetary"].notna().any()
            else (
                "Customers by the features they were clustered on",
                feature_scatter(placed, clustered_features(model)[:2], placed["segment"], order),
            ),
            "pca_scatter": ("Segments in the model's feature space (PCA)", projected),
        },
    }


def profile_figures(profiles: pd.DataFrame) -> Captioned:
    """Segment sizes and revenue shares."""
    return {
        "segment_sizes": ("Customers per segment", segment_sizes(profiles)),
        "segment_revenue": ("Share of net revenue by segment", segment_revenue(profiles)),
    }


def migration_figures(migration: Migration) -> Captioned:
    """The migration matrix, when some customers are in both runs (none on the first run)."""
    if not len(migration.matrix):
        return {}
    return {
        "segment_migration": ("Segment migration since the previous run", migration_heatmap(migration.matrix))
    }
