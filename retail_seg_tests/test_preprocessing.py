"""Each preprocessing step does what it says and says what it did."""

import numpy as np
import pandas as pd
import pytest

from retail_seg.core.preprocessing import Choices, encode_gender, impute_age, iqr_bounds, preprocess


def test_missing_ages_take_the_median_and_are_flagged():
    people = pd.DataFrame({"customer_id": list("abcd"), "age": [30, None, 50, 40], "gender": None})
    filled, median = impute_age(people)
    assert median == 40.0
    assert filled["age"].tolist() == [30, 40, 50, 40]
    assert filled["age_imputed"].tolist() == [False, True, False, False]
    assert people["age"].isna().sum() == 1  # the input is left as it was


def test_no_ages_at_all_stay_missing():
    filled, median = impute_age(pd.DataFrame({"customer_id": ["a"], "age": [None], "gender": None}))
    assert median is None and filled["age"].isna().all()


def test_gender_is_one_hot_encoded_with_unknown():
    encoded = encode_gender(pd.DataFrame({"gender": ["female", "male", None, "other"]}))
    assert encoded[
        ["gender_female", "gender_male", "gender_other", "gender_unknown"]
    ].to_numpy().tolist() == [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
        [0, 0, 1, 0],
    ]


def test_iqr_bounds_are_tukeys_fences():
    assert iqr_bounds(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9])) == (-3.0, 13.0)  # Q1 3, Q3 7
    assert iqr_bounds(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9]), multiplier=3) == (-9.0, 19.0)


def _features(n=50, outlier=1e7):
    rng = np.random.default_rng(0)
    monetary = rng.uniform(100, 200, n)
    monetary[0] = outlier
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "recency_days": rng.integers(1, 30, n),
            "frequency": rng.integers(1, 5, n),
            "monetary": monetary,
            "mean_days_between": np.where(np.arange(n) % 5 == 0, np.nan, 10.0),
        }
    )


def test_outliers_are_capped_in_log_space_and_counted():
    prepared = preprocess(_features(), None, Choices())
    steps = prepared.steps.set_index("feature")
    assert steps.loc["monetary", "capped"] == 1
    assert steps.loc["monetary", "iqr_high"] < 1e7  # the fence, in spend units, below the outlier
    assert prepared.matrix.shape == (50, 3)
    assert np.allclose(prepared.matrix.mean(axis=0), 0) and np.allclose(prepared.matrix.std(axis=0), 1)


def test_keeping_outliers_leaves_them_extreme():
    capped = preprocess(_features(), None, Choices())
    kept = preprocess(_features(), None, Choices(outliers="keep"))
    assert "capped" not in kept.steps
    assert kept.matrix[0, 2] > capped.matrix[0, 2] > 0


def test_engineered_feature_gaps_are_imputed_and_reported():
    prepared = preprocess(_features(), None, Choices(features=("recency_days", "mean_days_between")))
    assert prepared.steps.set_index("feature").loc["mean_days_between", "imputed_with_median"] == 10
    assert not np.isnan(prepared.matrix).any()


def test_demographics_join_with_flags():
    people = pd.DataFrame({"customer_id": ["c0", "c1"], "age": [None, 30.0], "gender": ["female", None]})
    prepared = preprocess(_features(n=2, outlier=150), people, Choices(outliers="keep"))
    frame = prepared.frame.set_index("customer_id")
    assert frame.loc["c0", "age_imputed"] and frame.loc["c0", "age"] == 30.0
    assert frame.loc["c1", "gender_unknown"] == 1
    assert prepared.ages_imputed == 1


def test_unknown_model_feature_is_named():
    with pytest.raises(ValueError, match="model features not in customer_features: loyalty"):
        preprocess(_features(), None, Choices(features=("monetary", "loyalty")))


def test_a_half_year_median_fills_integer_ages():
    people = pd.DataFrame(
        {"customer_id": list("abc"), "age": pd.array([41, 42, None], dtype="Int32"), "gender": None}
    )
    filled, median = impute_age(people)
    assert median == 41.5 and filled["age"].tolist() == [41.0, 42.0, 41.5]
