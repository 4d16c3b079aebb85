"""Preprocessing for the models, one visible step at a time: impute, encode, log, cap outliers, scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from retail_seg.core.features import RFM_COLUMNS
from retail_seg.core.frames import merge_one_to_one

GENDERS = ("female", "male", "other")


@dataclass(frozen=True)
class Choices:
    """How customer features become model input."""

    features: tuple[str, ...] = RFM_COLUMNS
    log_transform: bool = True
    outliers: Literal["cap", "keep"] = "cap"
    iqr_multiplier: float = 1.5
    scale: Literal["standard", "none"] = "standard"


@dataclass(frozen=True)
class Preprocessed:
    """Model input (one row per customer, in the order of the features given) and what each step did."""

    matrix: np.ndarray
    frame: pd.DataFrame
    steps: pd.DataFrame
    age_median: float | None
    ages_imputed: int


def impute_age(customers: pd.DataFrame) -> tuple[pd.DataFrame, float | None]:
    """Fill missing ages with the median age and flag them, so a profile can tell real from filled."""
    # As float: the median of whole ages can be a half (41.5), which an integer column cannot hold.
    ages = customers["age"].astype(float)
    missing = ages.isna()
    median = ages.median() if (~missing).any() else None
    filled = ages if median is None else ages.fillna(median)
    return customers.assign(age=filled, age_imputed=missing), None if median is None else float(median)


def encode_gender(customers: pd.DataFrame) -> pd.DataFrame:
    """One-hot gender columns (female, male, other, unknown) from the normalised gender."""
    gender = customers["gender"].where(customers["gender"].isin(GENDERS), "unknown")
    columns = {f"gender_{g}": (gender == g).astype("int8") for g in (*GENDERS, "unknown")}
    return customers.assign(**columns)


# Columns of `staging.customers` that are not categories to encode.
NOT_CATEGORIES = {
    "customer_id",
    "age",
    "gender",
    "country",
    "first_seen",
    "last_seen",
    "lines",
    "distinct_products",
}


def encode_categories(customers: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """One-hot columns for each category a customer table declares (education, marital status...), an
    empty value as its own `unknown` column; and a step per category saying how many columns it became."""
    categories = [c for c in customers.columns if c not in NOT_CATEGORIES and customers[c].dtype == object]
    encoded, steps = customers[["customer_id"]].copy(), []
    for name in categories:
        values = customers[name].fillna("unknown")
        for value in sorted(values.unique()):
            column = f"{name}_" + "".join(ch if ch.isalnum() else "_" for ch in str(value).lower())
            encoded[column] = (values == value).astype("int8")
        steps.append(
            {
                "feature": name,
                "one_hot_columns": int(values.nunique()),
                "unknown": int((values == "unknown").sum()),
            }
        )
    return encoded, steps


def iqr_bounds(values: np.ndarray, multiplier: float = 1.5) -> tuple[float, float]:
    """Tukey's fences: [Q1 - m·IQR, Q3 + m·IQR]."""
    q1, q3 = np.percentile(values, [25, 75])
    spread = q3 - q1
    return float(q1 - multiplier * spread), float(q3 + multiplier * spread)


def preprocess(features: pd.DataFrame, customers: pd.DataFrame | None, choices: Choices) -> Preprocessed:
    """Turn customer features into the standardized matrix the clustering reads, recording every step.

    Outliers are capped, not dropped: every customer must still get a segment, and a wholesaler at
    the fence is still the biggest spender. Capping happens after the log, where the fences describe
    the bulk of customers rather than being dragged out by a handful of extreme accounts.
    """
    unknown = [f for f in choices.features if f not in features]
    if unknown:
        raise ValueError(f"model features not in customer_features: {', '.join(unknown)}")
    frame = features[["customer_id"]].copy()
    steps = []
    columns = []
    for name in choices.features:
        raw = features[name].astype(float)
        missing = int(raw.isna().sum())
        values = raw.fillna(raw.median()).to_numpy() if missing else raw.to_numpy()
        step = {"feature": name, "imputed_with_median": missing, "log1p": choices.log_transform}
        if choices.log_transform:
            values = np.log1p(np.clip(values, 0, None))
        if choices.outliers == "cap":
            low, high = iqr_bounds(values, choices.iqr_multiplier)
            capped = int(((values < low) | (values > high)).sum())
            values = np.clip(values, low, high)
            to_units = np.expm1 if choices.log_transform else (lambda v: v)
            step |= {"iqr_low": float(to_units(low)), "iqr_high": float(to_units(high)), "capped": capped}
        if choices.scale == "standard":
            mean, std = float(values.mean()), float(values.std())
            values = (values - mean) / (std if std > 0 else 1.0)
            step |= {"scaled_mean": mean, "scaled_std": std}
        steps.append(step)
        columns.append(values)
        frame[f"{name}_model"] = values
    age_median, ages_imputed = None, 0
    if customers is not None and len(customers):
        people, age_median = impute_age(customers[["customer_id", "age", "gender"]])
        people = encode_gender(people).drop(columns="gender")
        ages_imputed = int(people["age_imputed"].sum())
        frame = merge_one_to_one(frame, people, how="left")
        encoded, encoding_steps = encode_categories(customers)
        if encoding_steps:
            frame = merge_one_to_one(frame, encoded, how="left")
            steps += encoding_steps
    return Preprocessed(
        matrix=np.column_stack(columns),
        frame=frame,
        steps=pd.DataFrame(steps),
        age_median=age_median,
        ages_imputed=ages_imputed,
    )
