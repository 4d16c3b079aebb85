"""Drift checks: a planted shift raises exactly the warnings it should, and a quiet rerun raises none."""

import numpy as np
import pandas as pd

from retail_seg.core.drift import DRIFT_CHECKS, drift_since, population_stability


def _segmented(seed: int = 0) -> pd.DataFrame:
    """600 customers in three segments of distinct R, F and M."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, (recency, frequency, monetary) in enumerate(((10, 20, 3000), (60, 6, 600), (300, 1, 40))):
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": [f"c{i}-{j}" for j in range(200)],
                    "segment_id": f"S{i + 1}",
                    "recency_days": rng.poisson(recency, 200),
                    "frequency": 1 + rng.poisson(frequency, 200),
                    "monetary": rng.gamma(4, monetary / 4, 200),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).assign(k=3, method="kmeans")


NAMES = {"S1": "champions", "S2": "frequent", "S3": "lapsed"}


def _failed(findings) -> set[str]:
    return {f.check for f in findings if not f.passed}


def test_a_quiet_rerun_raises_no_warning():
    findings = drift_since(_segmented(), _segmented(), NAMES)
    assert [f.check for f in findings] == list(DRIFT_CHECKS)
    assert _failed(findings) == set()


def test_a_segment_that_spends_four_times_as_much_moves_its_centre_and_the_spend_distribution():
    previous, current = _segmented(), _segmented()
    current.loc[current["segment_id"] == "S2", "monetary"] *= 4
    findings = {f.check: f for f in drift_since(previous, current, NAMES)}
    assert _failed(findings.values()) == {"segment_centres", "feature_stability"}
    assert findings["segment_centres"].words.startswith("Segment 'frequent' (S2) moved")
    assert "monetary" in findings["feature_stability"].words


def test_customers_moving_between_segments_and_a_new_k_are_named():
    previous, current = _segmented(), _segmented()
    movers = current.index[current["segment_id"] == "S1"][:150]
    current.loc[movers, "segment_id"] = "S3"
    current["k"] = 4
    findings = {f.check: f for f in drift_since(previous, current, NAMES)}
    assert {"segment_changes", "segment_sizes", "k_and_method"} <= _failed(findings.values())
    assert "Segment 'champions' (S1) shrank 75% (200 → 50)" in findings["segment_sizes"].words
    assert "Segment 'lapsed' (S3) grew 75% (200 → 350)" in findings["segment_sizes"].words
    assert findings["segment_changes"].words.startswith("25% of the 600 customers in both runs changed")
    assert "to kmeans with k = 4" in findings["k_and_method"].words


def test_a_first_run_has_nothing_to_drift_from():
    findings = drift_since(None, _segmented(), NAMES)
    assert _failed(findings) == set() and all("no previous run" in f.words for f in findings)


def test_population_stability_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    values = np.random.default_rng(1).normal(size=5000)
    assert population_stability(values, values) < 1e-9
    assert population_stability(values, values + 0.1) < population_stability(values, values + 1.0)
    assert population_stability(values, values + 1.0) > 0.2
