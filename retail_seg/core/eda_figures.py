"""Exploratory figures: distributions, spend by age band and by gender, monthly revenue. No pyplot."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from retail_seg.core.eda import AGE_BANDS, DISTRIBUTIONS, UNKNOWN, Exploration
from retail_seg.core.figures import Captioned, rfm_heatmap

# The first two colours of the segment figures, so every report figure shares one look.
_PRIMARY = "#1b9e77"
_SECONDARY = "#d95f02"
_PANELS_PER_ROW = 3


def histograms(panels: dict[str, pd.DataFrame], log_x: set[str]) -> Figure:
    """A grid of histograms from `histogram()` frames; each key titles its panel and labels its x axis.

    Keys should carry their unit, e.g. "recency (days)"; keys in `log_x` get a log x axis.
    """
    if not panels:
        raise ValueError("histograms: no panels to draw")
    unknown = sorted(log_x - panels.keys())
    if unknown:
        raise ValueError(f"histograms: log_x names {unknown}, which are not panels ({sorted(panels)})")
    columns = min(_PANELS_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, bins) in zip(axes, panels.items(), strict=False):
        if bins.empty:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        else:
            edges = [*bins["left"], bins["right"].iloc[-1]]
            ax.stairs(bins["count"], edges, fill=True, color=_PRIMARY)
        if label in log_x:
            ax.set_xscale("log")
        ax.set_title(label)
        ax.set_xlabel(f"{label}, log scale" if label in log_x else label)
        ax.set_ylabel("number of values")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Distributions")
    return fig


def _spend_bars(groups: pd.DataFrame, title: str, xlabel: str) -> Figure:
    if groups.empty:
        raise ValueError(f"{title}: the table has no rows for this dimension")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(groups["group"], groups["mean_spend"], color=_PRIMARY)
    ax.bar_label(bars, labels=[f"{n:,} customers" for n in groups["customers"]], fontsize="small")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean net spend per customer (currency units)")
    # Headroom so the customer counts above the tallest bar stay inside the axes.
    ax.margins(y=0.12)
    return fig


def spend_by_age_band(table: pd.DataFrame) -> Figure:
    """Mean net spend per customer by age band, with customers per band, from `spend_by_demographics()`."""
    bands = table[table["dimension"] == "age_band"]
    # A categorical axis keeps the order it is given; put bands in age order whatever the input order.
    ordered = bands.sort_values("group", key=lambda group: group.map(AGE_BANDS.index))
    return _spend_bars(ordered, "Mean net spend by age band", "age band (years)")


def spend_by_gender(table: pd.DataFrame) -> Figure:
    """Mean net spend per customer by gender, with customers per gender, from `spend_by_demographics()`."""
    return _spend_bars(table[table["dimension"] == "gender"], "Mean net spend by gender", "gender")


def spend_by_category(dimension: str):
    """A drawer of mean net spend per group of a declared category (education, marital status...)."""
    words = dimension.replace("_", " ")

    def draw(table: pd.DataFrame) -> Figure:
        return _spend_bars(table[table["dimension"] == dimension], f"Mean net spend by {words}", words)

    return draw


def monthly_revenue(table: pd.DataFrame) -> Figure:
    """Net revenue per month, with active customers on a second axis, from `spend_by_month()`."""
    if table.empty:
        raise ValueError("monthly revenue figure: the table has no months")
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(table["month"], table["net_revenue"], marker="o", color=_PRIMARY, label="net revenue")
    ax.set_ylabel("net revenue (currency units)")
    ax.set_xlabel("month")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    right = ax.twinx()
    right.plot(
        table["month"], table["customers"], marker="s", linestyle="--", color=_SECONDARY, label="customers"
    )
    right.set_ylabel("active customers")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left")
    ax.set_title("Net revenue and active customers per month")
    return fig


def eda_figures(exploration: Exploration, features: pd.DataFrame) -> Captioned:
    """Distributions, revenue by month, the RFM grid, and spend by age band and gender where the source
    has demographics (not a chart of "unknown")."""
    logged = {d.label for d in DISTRIBUTIONS if d.log} & set(exploration.histograms)
    figures: Captioned = {
        "eda_histograms": (
            "Distributions of the key variables",
            histograms(exploration.histograms, log_x=logged),
        )
    }
    # A customer table has no lines to count by month, and maybe no R/F/M to grid.
    if not exploration.monthly.empty:
        figures["monthly_revenue"] = (
            "Net revenue and active customers by month",
            monthly_revenue(exploration.monthly),
        )
    if features["r_score"].notna().any():
        figures["rfm_heatmap"] = ("RFM grid: mean net spend per R × F cell", rfm_heatmap(features))
    demographics = exploration.demographics
    if demographics["mean_spend"].isna().all():
        return figures  # no spend to compare groups by
    dimensions = [
        ("age_band", "spend_by_age_band", "Mean net spend by age band", spend_by_age_band),
        ("gender", "spend_by_gender", "Mean net spend by gender", spend_by_gender),
    ]
    for dimension in demographics["dimension"].unique():
        if dimension not in ("age_band", "gender"):
            words = dimension.replace("_", " ")
            dimensions.append(
                (
                    dimension,
                    f"spend_by_{dimension}",
                    f"Mean net spend by {words}",
                    spend_by_category(dimension),
                )
            )
    for dimension, name, caption, draw in dimensions:
        groups = demographics[demographics["dimension"] == dimension]
        if (groups["group"] != UNKNOWN).any():
            figures[name] = (caption, draw(groups))
    return figures
