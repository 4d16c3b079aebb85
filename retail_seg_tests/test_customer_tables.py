"""Customer tables (one row per customer, already aggregated): the same gates, preprocessing, clustering,
profiles and report as a history of lines, checked on the seed study's own tables and against a
transaction run."""

import datetime as dt

import duckdb
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from retail_seg.core.history import build_history
from retail_seg.core.lake import Lake
from retail_seg.core.loads import LoadRules, load_file
from retail_seg.core.mappings import load_customer_mappings, load_mappings
from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.conftest import real_file
from retail_seg_tests.pipeline import materialize_all, query

RFM_TABLE = """
name = "rfm_table"
grain = "customers"
[columns]
customer_id = "customer"
[optional]
age = "age"
[rfm]
recency_days = "days_since_last_order"
frequency = "orders"
monetary = "spend"
[categories]
tier = { column = "tier", values = ["gold", "silver"] }
[dates]
as_of = "{as_of}"
"""


def _rfm_mappings(tmp_path, as_of: str = "2025-06-30"):
    """A mappings folder holding the RFM customer table's mapping, measured as of `as_of`."""
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "rfm_table.toml").write_text(RFM_TABLE.replace("{as_of}", as_of))
    return mappings


def _segments(workdir) -> pd.DataFrame:
    rows = query(workdir, "SELECT customer_id, cluster, segment_id, k, method FROM marts.customer_segments")
    return pd.DataFrame(rows, columns=["customer_id", "cluster", "segment_id", "k", "method"])


def _published_run(source, workdir, mappings=None):
    result = materialize_all(source, workdir, mappings=mappings)
    assert result.success
    return result


def test_the_mall_table_gives_the_textbook_five_segments(tmp_path):
    _published_run(real_file("mall_customers.csv"), tmp_path)
    segments = _segments(tmp_path)
    assert set(segments["k"]) == {5} and set(segments["method"]) == {"kmeans"}
    assert sorted(segments["cluster"].value_counts(), reverse=True) == [81, 39, 35, 23, 22]
    # Income against spending score, neither logged (the mapping's defaults), both standardized.
    steps = dict(
        query(tmp_path, "SELECT feature, log1p FROM marts.preprocessing_steps WHERE log1p IS NOT NULL")
    )
    assert steps == {"annual_income": False, "spending_score": False}
    names = dict(query(tmp_path, "SELECT segment, customers FROM marts.segment_profiles"))
    assert names["high annual income, high spending score"] == 39
    assert names["high annual income, low spending score"] == 35
    report = (tmp_path / "reports" / "index.html").read_text()
    assert "Not computed: the source is a customer table" in report
    [(value,)] = query(tmp_path, "SELECT count(clv) FROM marts.customer_value")
    assert value == 0


@pytest.fixture(scope="module")
def ifood(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ifood")
    _published_run(real_file("ifood_raw_ml_project1_data.csv"), workdir)
    return workdir


def test_every_quirk_of_the_raw_ifood_table_ends_in_a_named_rule_or_a_reported_step(ifood):
    flags = query(ifood, 'SELECT rule, "column", value FROM staging.customer_flags ORDER BY 1, 3')
    ages = sorted(int(v) for rule, _, v in flags if rule == "implausible_age")
    assert ages == [114, 115, 121]  # born 1900, 1899, 1893, at the table's 2014-07-01
    statuses = sorted(v for rule, _, v in flags if rule == "unknown_category")
    assert statuses == ["Absurd", "Absurd", "Alone", "Alone", "Alone", "YOLO", "YOLO"]
    steps = {
        row[0]: row[1:]
        for row in query(
            ifood, "SELECT feature, imputed_with_median, capped, iqr_high FROM marts.preprocessing_steps"
        )
    }
    assert steps["income"][0] == 24  # the missing incomes, filled with the median and counted
    assert steps["income"][1] > 0 and steps["income"][2] < 666_666  # the 666,666 income is capped
    one_hot = dict(query(ifood, "SELECT feature, one_hot_columns FROM marts.preprocessing_steps"))
    assert one_hot["education"] == 5 and one_hot["marital_status"] == 6  # five statuses and 'unknown'
    # Nothing silently dropped: every row is a customer; those the features leave out are counted.
    [(rows, customers)] = query(
        ifood, "SELECT (SELECT sum(lines) FROM raw.loads), count(*) FROM staging.customers"
    )
    [(featured,)] = query(ifood, "SELECT count(*) FROM marts.customer_features")
    [(rejected,)] = query(ifood, "SELECT count(*) FROM staging.rejected_rows")
    [(no_purchase,)] = query(
        ifood, "SELECT count(*) FROM staging.customer_table WHERE frequency = 0 OR monetary <= 0"
    )
    assert rows == 2240 == customers + rejected and featured == customers - no_purchase


def test_the_ifood_segments_have_demographic_profiles_and_the_report_shows_spend_by_them(ifood):
    profiles = pd.DataFrame(
        query(
            ifood,
            "SELECT top_age_band, top_education, top_marital_status, top_income_band "
            "FROM marts.segment_profiles",
        ),
        columns=["age", "education", "marital", "income"],
    )
    assert len(profiles) >= 2 and (profiles != "").all().all()
    assert profiles["education"].str.contains("%").all()
    report = (ifood / "reports" / "index.html").read_text()
    for caption in (
        "Mean net spend by age band",
        "Mean net spend by education",
        "Mean net spend by marital status",
    ):
        assert caption in report


def _write_rfm_table(path, frame: pd.DataFrame) -> None:
    frame.rename(
        columns={
            "customer_id": "customer",
            "recency_days": "days_since_last_order",
            "frequency": "orders",
            "monetary": "spend",
        }
    ).to_csv(path, index=False)


def test_a_customer_table_made_from_a_transaction_run_gives_its_features_and_clusters(tmp_path):
    lines, _ = write_synthetic(tmp_path / "lines", customers=900, seed=8)
    _published_run(lines, tmp_path / "from_lines")
    features = pd.DataFrame(
        query(
            tmp_path / "from_lines",
            "SELECT customer_id, recency_days, frequency, monetary, as_of FROM marts.customer_features",
        ),
        columns=["customer_id", "recency_days", "frequency", "monetary", "as_of"],
    )
    mappings = _rfm_mappings(tmp_path, str(features["as_of"].iloc[0]))
    table = features.drop(columns="as_of").assign(age="", tier="")
    (tmp_path / "table").mkdir()
    _write_rfm_table(tmp_path / "table" / "customers.csv", table)
    _published_run(tmp_path / "table" / "customers.csv", tmp_path / "from_table", mappings=mappings)
    again = pd.DataFrame(
        query(
            tmp_path / "from_table",
            "SELECT customer_id, recency_days, frequency, monetary, as_of FROM marts.customer_features",
        ),
        columns=features.columns,
    )
    pd.testing.assert_frame_equal(
        features.sort_values("customer_id").reset_index(drop=True),
        again.sort_values("customer_id").reset_index(drop=True),
    )
    by_lines, by_table = _segments(tmp_path / "from_lines"), _segments(tmp_path / "from_table")
    both = by_lines.merge(by_table, on="customer_id", suffixes=("_lines", "_table"), validate="one_to_one")
    assert len(both) == len(features)
    assert (both["k_lines"] == both["k_table"]).all()
    assert adjusted_rand_score(both["cluster_lines"], both["cluster_table"]) == 1.0
    assert (both["cluster_lines"] == both["cluster_table"]).all()  # numbered by spend alike


def _load(path, lake, mappings_folder, load_id):
    return load_file(
        path,
        lake,
        load_id=load_id,
        run_id="test",
        rules=LoadRules(run_date=dt.date(2026, 1, 1), max_unparseable_share=0.5),  # a small file of bad rows
        mappings=load_mappings(mappings_folder),
        tables=load_customer_mappings(mappings_folder),
        id_key=None,
    )


def test_each_bad_row_of_a_customer_table_is_rejected_or_flagged_by_its_named_rule(tmp_path):
    mappings = _rfm_mappings(tmp_path)
    table = tmp_path / "crm.csv"
    table.write_text(
        "customer,days_since_last_order,orders,spend,age,tier\n"
        "A,10,3,120.5,34,gold\n"
        ",5,1,10,40,gold\n"  # missing_customer_id
        "B,ten,2,50,30,silver\n"  # value_not_a_number
        "C,-1,2,50,30,silver\n"  # negative_count
        "D,3,2,-5,30,silver\n"  # negative_spend
        "A,7,1,9,34,gold\n"  # duplicate_customer_id (A's first row is kept)
        "E,4,2,80,130,gold\n"  # implausible_age: kept, age left empty
        "F,4,2,80,45,platinum\n"  # unknown_category: kept, tier left empty
        "G,4,2,80,45,Silver\n"  # a declared value in another case is that value
        "H,inf,2,80,45,gold\n"  # value_not_a_number: infinity is no number of days
        "I,,2,80,45,gold\n"  # missing_rfm_value: a table that states recency states it for everyone
        "J,4,2,80,45,GOLD\n"
    )
    lake = Lake(tmp_path / "warehouse.duckdb")
    outcome = _load(table, lake, mappings, "crm@1")
    assert outcome.accepted, (
        outcome.staging_gate.message() if outcome.staging_gate else outcome.raw_gate.message()
    )
    assert (outcome.record.lines, outcome.record.clean, outcome.record.rejected) == (12, 5, 7)
    with duckdb.connect() as conn:
        folder = lake.loads / "crm@1"
        rejected = conn.execute(
            f"SELECT source_row, rule FROM read_parquet('{folder / 'rejected.parquet'}') ORDER BY 1"
        ).fetchall()
        flags = conn.execute(
            f"SELECT customer_id, rule, value FROM read_parquet('{folder / 'flags.parquet'}') ORDER BY 1"
        ).fetchall()
        kept = conn.execute(
            f"SELECT customer_id, age, tier FROM read_parquet('{folder / 'customers.parquet'}') ORDER BY 1"
        ).fetchall()
    assert rejected == [
        (2, "missing_customer_id"),
        (3, "value_not_a_number"),
        (4, "negative_count"),
        (5, "negative_spend"),
        (6, "duplicate_customer_id"),
        (10, "value_not_a_number"),
        (11, "missing_rfm_value"),
    ]
    assert flags == [("E", "implausible_age", "130"), ("F", "unknown_category", "platinum")]
    assert kept == [
        ("A", 34, "gold"),
        ("E", None, "gold"),
        ("F", 45, None),
        ("G", 45, "silver"),
        ("J", 45, "gold"),
    ]


def test_a_row_whose_id_starts_with_a_hash_is_read_not_taken_for_a_comment(tmp_path):
    """With these two rows DuckDB's sniffer takes '#' for a comment mark and would drop customer #B
    without a word; every line of a table is a row, judged by the rules."""
    mappings = _rfm_mappings(tmp_path)
    table = tmp_path / "crm.csv"
    table.write_text(
        "customer,days_since_last_order,orders,spend,age,tier\n#B,5,1,10,40,gold\n,5,1,10,40,gold\n"
    )
    outcome = _load(table, Lake(tmp_path / "warehouse.duckdb"), mappings, "crm@1")
    assert (outcome.record.lines, outcome.record.clean, outcome.record.rejected) == (2, 1, 1)


def test_a_newer_table_replaces_the_customers_it_lists_and_a_history_is_one_grain(tmp_path, conn):
    mappings = _rfm_mappings(tmp_path)
    header = "customer,days_since_last_order,orders,spend,age,tier\n"
    (tmp_path / "june.csv").write_text(header + "A,10,3,120,34,gold\nB,20,1,15,50,silver\n")
    (tmp_path / "july.csv").write_text(header + "A,2,4,160,34,gold\n")
    lake = Lake(tmp_path / "warehouse.duckdb")
    assert _load(tmp_path / "june.csv", lake, mappings, "june@1").accepted
    assert _load(tmp_path / "july.csv", lake, mappings, "july@2").accepted
    history = build_history(conn, lake, "run")
    rows = conn.execute("SELECT customer_id, frequency FROM staging.customer_table ORDER BY 1").fetchall()
    assert rows == [("A", 4), ("B", 1)]  # A from July's table, B still from June's
    assert [e.event for e in history.events].count("replaced") == 1
    # A file of lines cannot join a history of customer tables: refused at its load, naming the tables.
    lines, _ = write_synthetic(tmp_path / "lines", customers=50, seed=1)
    refused = _load(lines, lake, mappings, "lines@3")
    assert not refused.accepted and refused.refused_at == "raw"
    assert "the history holds customer tables (july.csv, june.csv)" in refused.raw_gate.message()
    assert build_history(conn, lake, "run").loads == history.loads  # the history is as it was


def test_the_cleaned_ifood_table_without_ids_gets_an_id_per_row_and_its_repeated_rows_count_once(tmp_path):
    lake = Lake(tmp_path / "warehouse.duckdb")
    outcome = _load(real_file("ifood_df.csv"), lake, None, "ifood_df@1")
    assert outcome.accepted and outcome.record.mapping == "ifood_clean"
    # 184 rows repeat another row value for value: the same customer, whose id is the row's hash.
    assert (outcome.record.lines, outcome.record.clean, outcome.record.rejected) == (2205, 2021, 184)
    with duckdb.connect() as conn:
        rules = conn.execute(
            f"SELECT DISTINCT rule FROM read_parquet('{lake.loads / 'ifood_df@1' / 'rejected.parquet'}')"
        ).fetchall()
    assert rules == [("duplicate_customer_id",)]
