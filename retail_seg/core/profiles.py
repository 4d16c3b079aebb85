"""Segment profiles: what each cluster looks like, a name derived from its numbers, and what to do."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pandas as pd

from retail_seg.core.features import ENGINEERED_COLUMNS, RFM_COLUMNS
from retail_seg.core.frames import merge_one_to_one
from retail_seg.core.preprocessing import NOT_CATEGORIES

# Numbers about each customer that `staging.customers` holds rather than the features.
CUSTOMER_COLUMNS = ("distinct_products",)
# The feature columns every history has; a customer table's declared features are the others.
KNOWN_FEATURE_COLUMNS = {
    "customer_id",
    *RFM_COLUMNS,
    *ENGINEERED_COLUMNS,
    "first_purchase",
    "last_purchase",
    "as_of",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
}


@dataclass(frozen=True)
class Action:
    """What a segment's label tells marketing to do, and what to measure to know it worked."""

    title: str
    do: str
    measure: str
    wins_back: bool = False


# Every label a segment can get, in the order the rules try them (`label_segment`).
ACTIONS = {
    "champions": Action(
        "Champions",
        "reward and retain them: loyalty perks, early access and service, not discounts",
        "retention and spend per customer against a hold-out",
    ),
    "frequent": Action(
        "Frequent buyers",
        "grow the basket: bundles and cross-sell to customers who already come back",
        "items and spend per order",
    ),
    "new": Action(
        "New customers",
        "onboard them: a welcome series and a second-purchase incentive while the first order is fresh",
        "the share who buy a second time within {window} days",
    ),
    "at-risk": Action(
        "At risk",
        "win them back now: a personal reactivation offer before they lapse for good",
        "the share who buy again within {window} days, against a hold-out",
        wins_back=True,
    ),
    "lapsed": Action(
        "Lapsed",
        "reactivate cheaply: occasional promotions only, no retention budget",
        "reactivations per unit of cost",
        wins_back=True,
    ),
    "slipping": Action(
        "Slipping",
        "remind, do not discount: most have gone quiet but some bought recently",
        "the share who buy again within {window} days",
    ),
    "big-spender": Action(
        "Big spenders",
        "raise their frequency: replenishment reminders and account management for large orders",
        "orders per customer over the next {window} days",
    ),
    "occasional": Action(
        "Occasional buyers",
        "give them a reason to come back: vouchers with an expiry date",
        "voucher redemption and repeat purchases",
    ),
}
WIN_BACK = frozenset(label for label, action in ACTIONS.items() if action.wins_back)
# A segment is overdue when its median customer has gone this many of its usual gaps without buying.
OVERDUE_GAPS = 2.0
# The share of customers a segment's median must beat to count as frequent (or, for champions, top).
FREQUENT, TOP = 0.5, 0.75
# A segment whose median customer is more likely gone than active (BG/NBD) has gone quiet too.
CHURNED = 0.5


@dataclass(frozen=True)
class SegmentNumbers:
    """What a segment's label is decided on, each relative to the customer base.

    `typical_gap` is the base's typical time between purchases (the median over repeat buyers); `gap` the
    segment's own (its repeat buyers' median, the base's when it has none). Percentiles say where the
    segment's median frequency and spend sit among all customers (0.5: the base's median).
    """

    recency: float
    min_recency: float
    gap: float
    typical_gap: float
    tenure: float
    frequency_pct: float
    monetary_pct: float
    churn_risk: float = 0.0
    """The segment's median BG/NBD churn risk (0 when no value was computed)."""

    @property
    def overdue(self) -> bool:
        """Gone quiet: the median customer is late by twice their usual gap, or likely no longer active."""
        return self.recency > OVERDUE_GAPS * self.gap or self.churn_risk >= CHURNED


def label_segment(n: SegmentNumbers) -> str:
    """A segment's label from its numbers; the rules are tried in order (README, "Segment names").

    A win-back label needs every customer of the segment to be quiet for longer than the base's typical
    gap: no one who bought recently is told they are being won back.
    """
    if not n.overdue and n.recency <= n.typical_gap and n.frequency_pct >= TOP and n.monetary_pct >= TOP:
        return "champions"
    if not n.overdue and n.frequency_pct >= FREQUENT:
        return "frequent"
    if n.tenure <= OVERDUE_GAPS * n.typical_gap and n.frequency_pct < FREQUENT:
        return "new"
    if n.overdue and n.min_recency > n.typical_gap:
        return "at-risk" if max(n.frequency_pct, n.monetary_pct) >= FREQUENT else "lapsed"
    if n.overdue:
        return "slipping"
    if n.monetary_pct >= TOP:
        return "big-spender"
    return "occasional"


def typical_gap(features: pd.DataFrame) -> float:
    """The base's typical days between purchases: the median over customers who bought more than once
    (the median recency when no one did, so that "recent" still means something)."""
    gaps = features.loc[features["frequency"] > 1, "mean_days_between"].dropna()
    return float(gaps.median()) if len(gaps) else float(features["recency_days"].median())


def _percentile(values: pd.Series, value: float) -> float:
    """Where `value` sits in `values`: the share below it, plus half the share equal to it."""
    return float(((values < value).sum() + 0.5 * (values == value).sum()) / len(values))


def segment_numbers(features: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """Each cluster's `SegmentNumbers`, one row per cluster."""
    # As floats: a column the source leaves empty (a table without first purchases) is NA, not NaN.
    numeric = [c for c in (*RFM_COLUMNS, *ENGINEERED_COLUMNS) if c in features]
    features = features.astype({c: float for c in numeric})
    data = merge_one_to_one(features, clusters)
    base_gap = typical_gap(features)
    rows = {}
    for cluster, group in data.groupby("cluster"):
        gap = group.loc[group["frequency"] > 1, "mean_days_between"].median()
        rows[cluster] = SegmentNumbers(
            recency=float(group["recency_days"].median()),
            min_recency=float(group["recency_days"].min()),
            gap=float(gap) if pd.notna(gap) else base_gap,
            typical_gap=base_gap,
            tenure=float(group["tenure_days"].median()),
            frequency_pct=_percentile(features["frequency"], group["frequency"].median()),
            monetary_pct=_percentile(features["monetary"], group["monetary"].median()),
            churn_risk=float(group["churn_risk"].median()) if "churn_risk" in group else 0.0,
        ).__dict__
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("cluster")


def label_clusters(numbers: pd.DataFrame) -> list[str]:
    """Labels for every cluster (rows of `segment_numbers`). Only the strongest of the clusters that
    qualify as champions keeps that label; the others are frequent buyers, so "champions" always means
    the best customers there are."""
    labels = [label_segment(SegmentNumbers(**row._asdict())) for row in numbers.itertuples(index=False)]
    strength = (numbers["frequency_pct"] + numbers["monetary_pct"]).to_numpy()
    contenders = [i for i, label in enumerate(labels) if label == "champions"]
    best = max(contenders, key=lambda i: strength[i], default=None)
    return ["frequent" if label == "champions" and i != best else label for i, label in enumerate(labels)]


def _unique_names(labels: list[str]) -> list[str]:
    """Number repeated labels ("at-risk 1", "at-risk 2") in cluster order, which is by spend."""
    counts = pd.Series(labels).value_counts()
    seen: dict[str, int] = {}
    names = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        names.append(f"{label} {seen[label]}" if counts[label] > 1 else label)
    return names


def has_rfm(features: pd.DataFrame) -> bool:
    """Whether the customers have recency, frequency and spend (a customer table may give other features)."""
    return bool(features[list(RFM_COLUMNS)].notna().all(axis=1).any())


# A cluster's median is high or low for a feature when it sits in the top or bottom third of the base.
HIGH, LOW = 2 / 3, 1 / 3


def standing(features: pd.DataFrame, clusters: pd.DataFrame, clustered: list[str]) -> pd.DataFrame:
    """Where each cluster's median of each clustered feature sits among all customers (0..1)."""
    data = merge_one_to_one(features, clusters)
    return pd.DataFrame(
        {
            feature: data.groupby("cluster")[feature]
            .median()
            .map(lambda m, f=feature: _percentile(features[f].dropna(), m))
            for feature in clustered
        }
    )


def _level(pct: float) -> str:
    return "high" if pct >= HIGH else "low" if pct <= LOW else "mid"


def name_segments(
    features: pd.DataFrame, clusters: pd.DataFrame, clustered: list[str] | None = None
) -> pd.DataFrame:
    """Each cluster's label and segment name (cluster, label, segment), from its numbers against the base:
    by recency, frequency and spend where the customers have them, else by where the cluster stands on
    each clustered feature ("high annual income, low spending score")."""
    if not has_rfm(features):
        placed = standing(features, clusters, clustered or [])
        labels = [
            ", ".join(f"{_level(row[f])} {f.replace('_', ' ')}" for f in placed.columns) or "customers"
            for _, row in placed.iterrows()
        ]
        return pd.DataFrame({"cluster": placed.index, "label": labels, "segment": _unique_names(labels)})
    numbers = segment_numbers(features, clusters)
    labels = label_clusters(numbers)
    return pd.DataFrame({"cluster": numbers.index, "label": labels, "segment": _unique_names(labels)})


def _share(value: float) -> str:
    return "under 1%" if 0 < value < 0.005 else f"{value:.0%}"


def _days(value: float) -> str:
    return f"{value:,.0f} day" + ("" if round(value) == 1 else "s")


def recommendation(label: str, profile: pd.Series, numbers: SegmentNumbers) -> str:
    """What to do with a segment, written from its own numbers: who, what is at stake, what to do, what to
    measure."""
    action = ACTIONS[label]
    window = round(max(numbers.gap, numbers.typical_gap) * OVERDUE_GAPS)
    who = (
        f"{profile['customers']:,} customers ({_share(profile['customer_share'])} of customers, "
        f"{_share(profile['revenue_share'])} of revenue: {profile['revenue']:,.0f} spent)"
    )
    times = round(profile["median_frequency"])
    typical = (
        f"the median customer bought {'once' if times == 1 else f'{times:,} times'} "
        f"for {profile['median_monetary']:,.0f}, last {_days(numbers.recency)} ago "
        f"(usual gap {_days(numbers.gap)})"
    )
    measure = action.measure.format(window=window)
    stake = ""
    if "expected_value" in profile and pd.notna(profile.get("mean_p_alive")):
        stake = (
            f" At stake: {profile['expected_value']:,.0f} expected over the coming year, "
            f"{profile['value_at_risk']:,.0f} of past spend at risk of churn "
            f"(median churn risk {numbers.churn_risk:.0%})."
        )
    return f"{who}; {typical}.{stake} Do: {action.do}. Measure: {measure}."


def feature_recommendation(profile: pd.Series, placed: pd.Series) -> str:
    """What to do with a segment of a table without purchase history: who, where it stands, and a test."""
    who = f"{profile['customers']:,} customers ({_share(profile['customer_share'])} of customers)"
    where = "; ".join(
        f"median {f.replace('_', ' ')} {profile[f'median_{f}']:,.4g} ({_level(placed[f])}, above "
        f"{placed[f]:.0%} of customers)"
        for f in placed.index
    )
    return (
        f"{who}; {where}. Do: tailor the offer to this profile and test it on part of the segment first. "
        "Measure: response and spend against a hold-out. (No purchase history: recency, churn risk and "
        "value cannot be weighed.)"
    )


AGE_BANDS = (0, 25, 35, 45, 55, 65, 200)


def _age_band(age: float) -> str | None:
    if pd.isna(age):
        return None
    for low, high in itertools.pairwise(AGE_BANDS):
        if low <= age < high:
            return f"under {high}" if low == 0 else f"{low}+" if high == 200 else f"{low}–{high - 1}"
    return None


def _top(values: pd.Series) -> str:
    known = values.dropna()
    if known.empty:
        return ""
    counts = known.value_counts()
    return f"{counts.index[0]} ({counts.iloc[0] / len(known):.0%})"


def profile_segments(
    features: pd.DataFrame,
    segments: pd.DataFrame,
    customers: pd.DataFrame | None = None,
    value: pd.DataFrame | None = None,
    clustered: list[str] | None = None,
) -> pd.DataFrame:
    """One row per cluster: size, shares, mean and median R/F/M, demographics, label and recommendation.

    `segments` gives each customer's cluster and, once the clusters are named, its label and segment
    (`name_segments` names them when they are not).
    """
    clusters = segments[["customer_id", "cluster"]]
    # A customer table's own numeric features (income, spending score...), not the value columns below.
    declared = [
        c for c in features.columns if c not in KNOWN_FEATURE_COLUMNS and features[c].dtype.kind == "f"
    ]
    if value is not None:
        features = features.merge(value[["customer_id", "p_alive", "churn_risk", "clv"]], on="customer_id")
    if {"label", "segment"} <= set(segments):
        kept = [c for c in ("segment_id", "cluster", "label", "segment") if c in segments]
        names = segments[kept].drop_duplicates("cluster")
    else:
        names = name_segments(features, clusters, clustered)
    data = merge_one_to_one(features, clusters)
    categories = []
    if customers is not None and len(customers):
        categories = [
            c for c in customers.columns if c not in NOT_CATEGORIES and customers[c].dtype == object
        ]
        described = [c for c in ("age", "gender", *CUSTOMER_COLUMNS, *categories) if c in customers]
        data = data.merge(customers[["customer_id", *described]], on="customer_id", how="left")
    grouped = data.groupby("cluster")
    profile = pd.DataFrame(
        {
            "customers": grouped.size(),
            "revenue": grouped["monetary"].sum().round(2),
        }
    )
    if value is not None:
        # Value at risk: each customer's past net spend weighted by the chance they are gone.
        profile["mean_p_alive"] = grouped["p_alive"].mean().round(4)
        profile["expected_value"] = grouped["clv"].sum().round(2)
        profile["value_at_risk"] = (
            (data["churn_risk"] * data["monetary"]).groupby(data["cluster"]).sum().round(2)
        )
    profile["customer_share"] = (profile["customers"] / profile["customers"].sum()).round(4)
    profile["revenue_share"] = (profile["revenue"] / profile["revenue"].sum()).round(4)
    for column in (*RFM_COLUMNS, *ENGINEERED_COLUMNS, *CUSTOMER_COLUMNS, *declared):
        if column in data and data[column].notna().any():
            profile[f"mean_{column}"] = grouped[column].mean().round(2)
            profile[f"median_{column}"] = grouped[column].median().round(2)
    if "rfm_segment" in data and data["rfm_segment"].notna().any():
        profile["top_rfm_segment"] = grouped["rfm_segment"].agg(lambda s: s.value_counts().index[0])
    if "age" in data:
        profile["mean_age"] = grouped["age"].mean().round(1)
        profile["female_share"] = grouped["gender"].apply(
            lambda g: (g == "female").sum() / max(g.notna().sum(), 1)
        )
        profile["female_share"] = profile["female_share"].round(4)
        profile["top_age_band"] = grouped["age"].agg(lambda a: _top(a.map(_age_band)))
    for column in declared:
        if "income" in column and data[column].notna().any():
            bands = pd.qcut(
                data[column], 4, labels=["lowest", "second", "third", "highest"], duplicates="drop"
            )
            profile[f"top_{column}_band"] = (
                bands.astype(object)
                .groupby(data["cluster"])
                .agg(lambda b: _top(b.map(lambda q: f"{q} quarter" if pd.notna(q) else None)))
            )
    for column in categories:
        profile[f"top_{column}"] = grouped[column].agg(_top)
    named = names.set_index("cluster").loc[profile.index]
    if "segment_id" in named:
        profile.insert(0, "segment_id", named["segment_id"])
    profile["label"] = named["label"]
    profile["segment"] = named["segment"]
    if not has_rfm(features):
        placed = standing(features, clusters, clustered or [])
        for feature in placed.columns:
            if f"median_{feature}" not in profile:
                profile[f"median_{feature}"] = grouped[feature].median().round(2)
        profile["recommendation"] = [
            feature_recommendation(profile.loc[cluster], placed.loc[cluster]) for cluster in profile.index
        ]
        return profile.reset_index()
    numbers = segment_numbers(features, clusters).loc[profile.index]
    profile["typical_gap_days"] = numbers["gap"].round(1)
    profile["recommendation"] = [
        recommendation(label, profile.loc[cluster], SegmentNumbers(**numbers.loc[cluster].to_dict()))
        for cluster, label in profile["label"].items()
    ]
    return profile.reset_index()
