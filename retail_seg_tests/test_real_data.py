"""The real UCI Online Retail export (541,909 lines), when ../shared/data is present."""

import pandas as pd
import pytest

from retail_seg.core.mappings import load_mappings
from retail_seg_tests.conftest import real_file
from retail_seg_tests.pipeline import ALL_ASSETS, materialize_all, query

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def uci(tmp_path_factory):
    source = real_file("online_retail.parquet")
    workdir = tmp_path_factory.mktemp("uci")
    result = materialize_all(source, workdir)
    return source, workdir, result


def _expected_customers(source) -> set[str]:
    """Customers with positive net spend, computed independently in pandas from the file itself."""
    uci = next(m for m in load_mappings() if m.name == "uci_online_retail")
    every = pd.read_parquet(source)
    # An entry error is a quantity beyond 1,000 times the median of its product's lines (every line counts).
    typical = (
        every["Quantity"]
        .abs()
        .where(every["Quantity"] != 0)
        .groupby(every["StockCode"].str.strip().str.upper())
    ).transform("median")
    tx = (
        every.assign(typical=typical)
        .dropna(subset=["CustomerID"])
        .drop_duplicates(subset=list(every.columns))
    )
    tx = tx[(tx["UnitPrice"] > 0) & (tx["Quantity"].abs() <= 1000 * tx["typical"])]
    code = tx["StockCode"].str.strip().str.upper()
    prefixes = tuple(uci.non_product_prefixes)
    tx = tx[~code.isin(uci.non_product_codes) & ~code.str.startswith(prefixes)]
    tx = tx.assign(customer=tx["CustomerID"].astype(int).astype(str), spend=tx["Quantity"] * tx["UnitPrice"])
    bought = tx[~tx["InvoiceNo"].str.startswith("C")].groupby("customer").size()
    spend = tx.groupby("customer")["spend"].sum().round(4)  # a full return nets to 0, not 1e-14
    return set(spend[(spend > 0) & spend.index.isin(bought.index)].index)


def test_every_customer_with_a_purchase_is_segmented(uci):
    source, workdir, result = uci
    assert result.success
    segmented = {row[0] for row in query(workdir, "SELECT customer_id FROM marts.customer_segments")}
    assert 4300 <= len(segmented) <= 4372
    assert segmented == _expected_customers(source)


def test_uci_rejections_match_the_published_quirks(uci):
    _, workdir, _ = uci
    rules = dict(query(workdir, "SELECT rule, count(*) FROM staging.rejected_rows GROUP BY rule"))
    assert rules["missing_customer_id"] == 135_080  # the published count of null CustomerID
    [(raw,)] = query(workdir, "SELECT sum(lines) FROM raw.loads")
    assert raw == 541_909


def test_the_whole_analysis_finishes_on_real_data(uci):
    _, workdir, result = uci
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == ALL_ASSETS
    [(methods, agreement)] = query(
        workdir, "SELECT count(*), max(adjusted_rand_vs_other) FROM marts.method_comparison"
    )
    assert methods == 2 and 0 < agreement <= 1
    labels = {row[0] for row in query(workdir, "SELECT label FROM marts.segment_profiles")}
    assert "high-value" in labels
