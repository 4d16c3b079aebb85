"""Report figures. Built with matplotlib's object API (no pyplot), so no global state leaks between runs."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

_PALETTE = (
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


def elbow_curve(k_table: pd.DataFrame, chosen_k: int) -> Figure:
    """Inertia (elbow) and silhouette against k, with the chosen k marked."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(k_table["k"], k_table["inertia"], marker="o", color=_PALETTE[0], label="inertia")
    ax.axvline(chosen_k, color="grey", linestyle="--", label=f"chosen k = {chosen_k}")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("inertia (within-cluster sum of squares)")
    ax.set_title("Elbow method: K-Means inertia and silhouette by k")
    right = ax.twinx()
    right.plot(k_table["k"], k_table["silhouette"], marker="s", color=_PALETTE[1], label="silhouette")
    right.set_ylabel("silhouette score")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right")
    return fig


def cluster_scatter(
    features: pd.DataFrame, segments: pd.Series, max_points: int = 20_000, seed: int = 0
) -> Figure:
    """Customers on log axes (recency vs spend, frequency vs spend), coloured by segment."""
    data = features.assign(segment=segments.to_numpy())
    if len(data) > max_points:
        data = data.sample(max_points, random_state=seed)
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    for colour, (name, group) in zip(_PALETTE * 3, data.groupby("segment", sort=True), strict=False):
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


def _segment_bar(profiles: pd.DataFrame, column: str, title: str, ylabel: str, percent: bool) -> Figure:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    values = profiles[column] * (100 if percent else 1)
    colours = [_PALETTE[i % len(_PALETTE)] for i in range(len(profiles))]
    bars = ax.bar(profiles["segment"], values, color=colours)
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
