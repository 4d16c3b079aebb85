"""Segment profiles: what each cluster looks like, a name derived from its numbers, and what to do."""

from __future__ import annotations

import numpy as np
import pandas as pd

from retail_seg.core.features import ENGINEERED_COLUMNS, RFM_COLUMNS

# Numbers about each customer that `staging.customers` holds rather than the features.
CUSTOMER_COLUMNS = ("distinct_products",)

RECOMMENDATIONS = {
    "high-value": "Reward and retain: loyalty programme, early access and service, not discounts.",
    "frequent": "Grow the basket: bundles and cross-sell to customers who already come back often.",
    "big-spender": "Raise frequency: replenishment reminders and account management for large orders.",
    "new": "Onboard: welcome series and a second-purchase incentive while the first order is fresh.",
    "at-risk": "Win back now: a personal reactivation offer before valuable customers lapse for good.",
    "lapsed": "Reactivate cheaply: occasional promotions only; do not spend retention budget here.",
    "low-frequency": "Promotions that give a reason to come back: vouchers with an expiry date.",
}


def label_profile(recency_z: float, frequency_z: float, monetary_z: float) -> str:
    """A business label from how a cluster's median log R, F and M sit against all customers (z-scores).

    Lower recency is better, so a negative recency_z means recent buyers. Rules are tried in order.
    """
    if frequency_z > 0.5 and monetary_z > 0.5 and recency_z < 0:
        return "high-value"
    if frequency_z > 0.4 and recency_z < 0:
        return "frequent"
    if recency_z > 0.3 and (frequency_z > 0 or monetary_z > 0):
        return "at-risk"
    if recency_z > 0.5:
        return "lapsed"
    if frequency_z < -0.5 and recency_z < 0:
        return "new"
    if monetary_z > 0.5:
        return "big-spender"
    return "low-frequency"


def label_clusters(median_z: pd.DataFrame) -> list[str]:
    """Labels for every cluster (rows: recency_days, frequency, monetary z-scores of cluster medians).

    Only the strongest of the clusters that qualify as high-value keeps that label; the others are
    the next tier, frequent buyers, so "high-value" always means the best customers there are.
    """
    labels = [label_profile(r.recency_days, r.frequency, r.monetary) for r in median_z.itertuples()]
    strength = median_z["frequency"] + median_z["monetary"]
    contenders = [i for i, label in enumerate(labels) if label == "high-value"]
    best = max(contenders, key=lambda i: strength.iloc[i], default=None)
    return ["frequent" if label == "high-value" and i != best else label for i, label in enumerate(labels)]


def _unique_names(labels: list[str]) -> list[str]:
    """Number repeated labels ("at-risk 1", "at-risk 2") in cluster order, which is by spend."""
    counts = pd.Series(labels).value_counts()
    seen: dict[str, int] = {}
    names = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        names.append(f"{label} {seen[label]}" if counts[label] > 1 else label)
    return names


def name_segments(features: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """Each cluster's label and segment name (cluster, label, segment), from its customers' median log
    R, F and M against all customers."""
    data = features[["customer_id", *RFM_COLUMNS]].merge(clusters, on="customer_id", validate="one_to_one")
    logged = np.log1p(data[list(RFM_COLUMNS)].astype(float))
    z = (logged - logged.mean()) / logged.std(ddof=0).replace(0, 1)
    median_z = z.groupby(data["cluster"]).median()
    labels = label_clusters(median_z)
    return pd.DataFrame({"cluster": median_z.index, "label": labels, "segment": _unique_names(labels)})


def profile_segments(
    features: pd.DataFrame, segments: pd.DataFrame, customers: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per cluster: size, shares, mean and median R/F/M, demographics, label and recommendation.

    `segments` gives each customer's cluster and, once the clusters are named, its label and segment
    (`name_segments` names them when they are not).
    """
    clusters = segments[["customer_id", "cluster"]]
    if {"label", "segment"} <= set(segments):
        names = segments[["cluster", "label", "segment"]].drop_duplicates("cluster")
    else:
        names = name_segments(features, clusters)
    data = features.merge(clusters, on="customer_id", validate="one_to_one")
    if customers is not None and len(customers):
        described = [c for c in ("age", "gender", *CUSTOMER_COLUMNS) if c in customers]
        data = data.merge(customers[["customer_id", *described]], on="customer_id", how="left")
    grouped = data.groupby("cluster")
    profile = pd.DataFrame(
        {
            "customers": grouped.size(),
            "revenue": grouped["monetary"].sum().round(2),
        }
    )
    profile["customer_share"] = (profile["customers"] / profile["customers"].sum()).round(4)
    profile["revenue_share"] = (profile["revenue"] / profile["revenue"].sum()).round(4)
    for column in (*RFM_COLUMNS, *ENGINEERED_COLUMNS, *CUSTOMER_COLUMNS):
        if column in data:
            profile[f"mean_{column}"] = grouped[column].mean().round(2)
            profile[f"median_{column}"] = grouped[column].median().round(2)
    if "rfm_segment" in data:
        profile["top_rfm_segment"] = grouped["rfm_segment"].agg(lambda s: s.value_counts().index[0])
    if "age" in data:
        profile["mean_age"] = grouped["age"].mean().round(1)
        profile["female_share"] = grouped["gender"].apply(
            lambda g: (g == "female").sum() / max(g.notna().sum(), 1)
        )
        profile["female_share"] = profile["female_share"].round(4)
    named = names.set_index("cluster").loc[profile.index]
    profile["label"] = named["label"]
    profile["segment"] = named["segment"]
    profile["recommendation"] = [RECOMMENDATIONS[label] for label in named["label"]]
    return profile.reset_index()
