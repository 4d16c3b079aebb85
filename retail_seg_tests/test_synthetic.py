"""The default data is deterministic, has its planted groups, and carries the dirt real exports have."""

import pandas as pd
import pytest

from retail_seg.core.synthetic import GROUPS, generate_transactions, write_synthetic


@pytest.fixture(scope="module")
def data():
    return generate_transactions(customers=1500, seed=11)


def test_same_seed_same_data(data):
    again = generate_transactions(customers=1500, seed=11)
    pd.testing.assert_frame_equal(data.transactions, again.transactions)
    other = generate_transactions(customers=1500, seed=12)
    assert not other.transactions["customer_id"].equals(data.transactions["customer_id"])


def test_every_customer_is_planted_in_a_known_group(data):
    planted = data.planted
    assert len(planted) == 1500 and planted["customer_id"].is_unique
    assert set(planted["group"]) == {g.name for g in GROUPS}
    shares = planted["group"].value_counts(normalize=True)
    for group in GROUPS:
        assert shares[group.name] == pytest.approx(group.share, abs=0.04)
    sold_to = set(data.transactions["customer_id"]) - {""}
    assert sold_to <= set(planted["customer_id"])


def test_export_carries_real_dirt(data):
    tx = data.transactions
    assert 0.02 < (tx["customer_id"] == "").mean() < 0.10
    assert tx.duplicated().sum() > 0.005 * len(tx)
    cancellations = tx[tx["invoice_no"].str.startswith("C")]
    assert len(cancellations) > 100 and (cancellations["quantity"] < 0).all()
    assert (tx["unit_price"] == 0).sum() > 10 and (tx["unit_price"] < 0).sum() > 0
    assert (tx["quantity"] > 10_000).sum() >= 1
    known = tx[tx["customer_id"] != ""]
    assert known["age"].isna().mean() > 0.03
    assert known["gender"].nunique() >= 10  # female, F, f, Woman, ...


def test_spans_two_years_before_the_end_date(data):
    dates = pd.to_datetime(data.transactions["invoice_date"])
    assert dates.max() < pd.Timestamp("2025-12-01")
    assert dates.min() >= pd.Timestamp("2023-12-01")
    assert (dates.max() - dates.min()).days > 600


def test_write_synthetic_writes_both_files(tmp_path):
    transactions, planted = write_synthetic(tmp_path, customers=200, seed=1)
    assert pd.read_csv(transactions).shape[1] == 11
    assert len(pd.read_csv(planted)) == 200
