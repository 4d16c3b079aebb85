"""Every asset, end to end, on the default synthetic data: tables, report, and the planted groups found."""

import re

import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from retail_seg.core.synthetic import write_synthetic
from retail_seg.definitions import build_definitions
from retail_seg.defs.ingest import LOADED
from retail_seg_tests.pipeline import ALL_ASSETS, materialize_all, query


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    source, planted = write_synthetic(workdir / "synthetic")  # the default data set, as `make run` makes it
    result = materialize_all(source, workdir)
    return result, workdir, planted


def test_every_asset_materializes(run):
    result, _, _ = run
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys == ALL_ASSETS


def test_the_two_jobs_cover_every_asset():
    """load_files takes one file into the history (a partition); segment_customers publishes the history."""
    definitions = build_definitions()

    def keys(job: str) -> set[str]:
        return {
            k.to_user_string() for k in definitions.resolve_job_def(job).asset_layer.executable_asset_keys
        }

    assert keys("load_files") == set(LOADED)
    assert keys("segment_customers") == ALL_ASSETS - set(LOADED)


def test_every_table_asset_describes_its_table(run):
    result, workdir, _ = run
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if event.asset_key.to_user_string() in ("segment_report", "publication", *LOADED):
            continue
        table = metadata["dagster/table_name"].value
        assert metadata["dagster/row_count"].value == query(workdir, f"SELECT count(*) FROM {table}")[0][0]
        assert len(metadata["dagster/column_schema"].schema.columns) >= 2


def test_every_raw_line_is_clean_or_rejected(run):
    _, workdir, _ = run
    [(raw, clean, rejected)] = query(
        workdir,
        "SELECT (SELECT sum(lines) FROM raw.loads), (SELECT count(*) FROM staging.transactions), "
        "(SELECT count(*) FROM staging.rejected_rows)",
    )
    assert raw == clean + rejected
    rules = dict(query(workdir, "SELECT rule, count(*) FROM staging.rejected_rows GROUP BY rule"))
    assert {"missing_customer_id", "duplicate_line", "non_positive_unit_price", "absurd_quantity"} <= set(
        rules
    )


def test_one_row_per_customer_and_every_featured_customer_segmented(run):
    _, workdir, _ = run
    [(rows, distinct)] = query(
        workdir, "SELECT count(*), count(DISTINCT customer_id) FROM marts.customer_features"
    )
    assert rows == distinct > 4900
    [(unsegmented,)] = query(
        workdir,
        "SELECT count(*) FROM marts.customer_features f FULL JOIN marts.customer_segments s "
        "USING (customer_id) WHERE f.customer_id IS NULL OR s.segment IS NULL",
    )
    assert unsegmented == 0
    [(profiled, segments, k)] = query(
        workdir,
        "SELECT sum(customers), count(*), "
        "(SELECT k FROM marts.k_selection WHERE chosen AND method = 'kmeans') FROM marts.segment_profiles",
    )
    assert profiled == rows and segments == k and 2 <= k <= 10


@pytest.mark.parametrize("method", ["kmeans", "ward"])
def test_each_method_recovers_the_planted_groups(run, method):
    _, workdir, planted = run
    found = pd.DataFrame(
        query(workdir, f"SELECT customer_id, {method}_cluster FROM marts.customer_segments"),
        columns=["customer_id", "cluster"],
    )
    truth = pd.read_csv(planted, dtype={"customer_id": str})
    joined = found.merge(truth, on="customer_id", validate="one_to_one")
    assert len(joined) == len(found)
    assert adjusted_rand_score(joined["group"], joined["cluster"]) >= 0.6


def test_published_method_is_the_one_the_comparison_favours(run):
    _, workdir, _ = run
    rows = query(
        workdir, "SELECT method, silhouette, selected FROM marts.method_comparison ORDER BY silhouette DESC"
    )
    assert sorted(r[0] for r in rows) == ["kmeans", "ward"]
    assert rows[0][2] or rows[0][1] == rows[1][1]  # the higher silhouette is selected (a tie keeps K-Means)
    [(method,)] = query(workdir, "SELECT DISTINCT method FROM marts.customer_segments")
    assert method == next(r[0] for r in rows if r[2])


def test_the_top_spending_most_frequent_segment_is_labelled_high_value(run):
    _, workdir, _ = run
    rows = query(
        workdir,
        "SELECT label, median_monetary, median_frequency FROM marts.segment_profiles ORDER BY 2 DESC",
    )
    top = rows[0]
    assert top[2] == max(r[2] for r in rows)  # on this data the biggest spenders are also the most frequent
    assert top[0] == "high-value"


def test_every_featured_customer_has_an_rfm_segment_and_scores(run):
    _, workdir, _ = run
    [(missing, scores)] = query(
        workdir,
        "SELECT count(*) FILTER (WHERE rfm_segment IS NULL), "
        "count(DISTINCT r_score) + count(DISTINCT f_score) + count(DISTINCT m_score) "
        "FROM marts.customer_features",
    )
    assert missing == 0 and scores >= 12


def test_report_shows_existing_figures_and_the_profiles(run):
    _, workdir, _ = run
    page = (workdir / "reports" / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert set(images) == {
        "elbow_curve.png",
        "cluster_scatter.png",
        "pca_scatter.png",
        "segment_sizes.png",
        "segment_revenue.png",
        "rfm_heatmap.png",
        "dendrogram.png",
        "eda_histograms.png",
        "monthly_revenue.png",
        "spend_by_age_band.png",
        "spend_by_gender.png",
    }
    for image in images:
        assert (workdir / "reports" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for segment, recommendation in query(
        workdir, "SELECT segment, recommendation FROM marts.segment_profiles"
    ):
        assert f">{segment}</td>" in page and f">{recommendation}</td>" in page
    assert "published method" in page and "adjusted Rand index" in page


def test_every_gate_passed_and_lists_its_rules(run):
    result, _, _ = run
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert {(ev.asset_key.to_user_string(), ev.check_name) for ev in evaluations} == {
        ("raw_transactions", "raw_gate"),
        ("clean_transactions", "staging_gate"),
        ("customer_features", "features_gate"),
        ("customer_segments", "segments_gate"),
        ("transaction_history", "every_file_loaded"),  # a warning when a file is refused
    }
    for evaluation in evaluations:
        assert evaluation.passed
        if evaluation.check_name == "every_file_loaded":
            assert evaluation.severity.value == "WARN"
            continue
        assert evaluation.severity.value == "ERROR"
        rules = [label for label in evaluation.metadata if label.startswith("pass: ")]
        assert len(rules) == evaluation.metadata["evaluated"].value >= 6
