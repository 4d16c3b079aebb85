"""The real UCI Online Retail export (541,909 lines), when ../shared/data is present."""

import duckdb
import pandas as pd
import pytest

from retail_seg.core.lake import Lake
from retail_seg.core.mappings import load_mappings
from retail_seg_tests.conftest import real_file
from retail_seg_tests.pipeline import ALL_ASSETS, materialize_all, query, told_to_win_back

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
    assert "champions" in labels


def test_on_real_data_no_recent_buyer_is_told_they_are_being_won_back(uci):
    _, workdir, _ = uci
    told, typical, customers = told_to_win_back(workdir)
    assert (told["recency_days"] > typical).all()
    segments = query(
        workdir,
        "SELECT segment, customers, median_recency_days, median_frequency, revenue, expected_value, "
        "value_at_risk FROM marts.segment_profiles ORDER BY cluster",
    )
    print(f"\nUCI segments (typical gap {typical:.0f} days):")
    for row in segments:
        print(
            "  {} {:,} customers, median recency {:.0f} d, {:.0f} invoices, spent {:,.0f}; expected "
            "{:,.0f}, at risk {:,.0f}".format(*row)
        )
    assert sum(row[1] for row in segments) == customers


# Only the features are compared, so the monthly runs sweep fewer k to keep the test quick.
QUICK = {"ops": {"segmentation": {"config": {"k_max": 4}}}}


def _features(workdir) -> list[tuple]:
    return query(
        workdir,
        "SELECT * FROM marts.customer_features ORDER BY customer_id",
    )


def test_monthly_files_add_up_to_the_whole_export(uci, tmp_path):
    """The export split into monthly files, one run per month as a nightly `make run` over the folder,
    ends with exactly the features of one run over the whole file; a corrected month replaces its earlier
    version; a refused month leaves the published tables and the other months' loads as they were."""
    source, whole, _ = uci
    months = [
        month
        for (month,) in duckdb.sql(
            f"SELECT DISTINCT left(InvoiceDate, 7) FROM read_parquet('{source}') ORDER BY 1"
        ).fetchall()
    ]
    assert len(months) == 13
    folder, workdir = tmp_path / "exports", tmp_path / "warehouse"
    folder.mkdir()
    for month in months:
        duckdb.sql(
            f"COPY (SELECT * FROM read_parquet('{source}') WHERE left(InvoiceDate, 7) = '{month}') "
            f"TO '{folder / f'{month}.parquet.new'}' (FORMAT parquet)"
        )
    for number, month in enumerate(months, start=1):
        (folder / f"{month}.parquet.new").rename(folder / f"{month}.parquet")  # the month's file arrives
        result = materialize_all(folder, workdir, run_config=QUICK)
        assert result.success
        # Each run loads only its month's file; the history holds every month so far.
        loaded = query(
            workdir,
            f"SELECT key FROM audit.load_events WHERE run_id = '{result.run_id}' AND event = 'loaded'",
        )
        assert loaded == [(f"{month}.parquet",)]
        assert query(workdir, "SELECT count(*) FROM raw.loads") == [(number,)]
    assert _features(workdir) == _features(whole)
    assert query(workdir, "SELECT sum(lines) FROM raw.loads") == [(541_909,)]

    # A corrected March: one invoice's lines were posted in error and are gone from the new version.
    march = folder / "2011-03.parquet"
    [(invoice, _)] = duckdb.sql(
        f"SELECT InvoiceNo, count(*) FROM read_parquet('{march}') WHERE CustomerID IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchall()
    [(before, lines)] = query(
        workdir,
        f"SELECT count(*), count(*) FILTER (WHERE invoice_no = '{invoice}') FROM staging.transactions",
    )
    assert lines > 10
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet('{march}') WHERE InvoiceNo <> '{invoice}') "
        f"TO '{tmp_path / 'march.parquet'}' (FORMAT parquet)"
    )
    (tmp_path / "march.parquet").replace(march)
    result = materialize_all(folder, workdir, run_config=QUICK)
    assert result.success
    assert query(workdir, "SELECT count(*) FROM staging.transactions") == [(before - lines,)]
    assert query(workdir, f"SELECT count(*) FROM staging.transactions WHERE invoice_no = '{invoice}'") == [
        (0,)
    ]
    events = query(
        workdir, f"SELECT event, key FROM audit.load_events WHERE run_id = '{result.run_id}' ORDER BY 1"
    )
    assert events == [("loaded", "2011-03.parquet"), ("superseded", "2011-03.parquet")]
    assert query(workdir, "SELECT count(*) FROM raw.loads") == [(13,)]
    lake = Lake(workdir / "warehouse.duckdb")
    assert len(list(lake.loads.iterdir())) == 13  # the superseded March is gone from the lake

    # A refused month: January 2012 arrives with its prices in another column.
    accepted = lake.accepted()
    derived = _features(workdir)
    bad = folder / "2012-01.parquet"
    duckdb.sql(
        f"COPY (SELECT * EXCLUDE (UnitPrice), 'n/a' AS UnitPrice FROM read_parquet('{march}')) TO '{bad}' "
        "(FORMAT parquet)"
    )
    result = materialize_all(folder, workdir, run_config=QUICK)
    assert result.success  # the publication over the accepted history went ahead...
    [warning] = [
        e.description
        for e in result.get_asset_check_evaluations()
        if e.check_name == "every_file_loaded" and not e.passed
    ]
    assert f"{bad} refused" in warning and "unit prices are numbers" in warning  # ...and said why
    assert lake.accepted() == accepted  # the other months' loads are as they were
    assert _features(workdir) == derived
    assert query(workdir, f"SELECT event, key FROM audit.load_events WHERE run_id = '{result.run_id}'") == [
        ("refused", "2012-01.parquet")
    ]
