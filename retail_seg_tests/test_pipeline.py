"""Every asset, end to end, on the default synthetic data: tables, report, and the planted groups found."""

import html
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from retail_seg.core.drift import DRIFT_CHECKS
from retail_seg.core.synthetic import write_synthetic
from retail_seg.definitions import build_definitions
from retail_seg.defs.ingest import LOADED
from retail_seg_tests.pipeline import ALL_ASSETS, materialize_all, query, told_to_win_back


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


def _with_planted(workdir, planted, columns: str) -> pd.DataFrame:
    names = [c.strip().split(" AS ")[-1] for c in columns.split(",")]
    found = pd.DataFrame(query(workdir, f"SELECT customer_id, {columns} FROM marts.customer_segments"))
    found.columns = ["customer_id", *names]
    truth = pd.read_csv(planted, dtype={"customer_id": str})
    joined = found.merge(truth, on="customer_id", validate="one_to_one")
    assert len(joined) == len(found)
    return joined


def test_the_scores_overrule_the_elbow_and_k_is_the_planted_six(run):
    _, workdir, _ = run
    [(k, why)] = query(
        workdir,
        "SELECT k, (SELECT reason FROM marts.method_comparison WHERE selected) FROM marts.k_selection "
        "WHERE chosen AND method = 'kmeans'",
    )
    assert k == 6  # the elbow alone says 4, merging champions with regulars (FIELD-NOTES)
    [(published,)] = query(workdir, "SELECT DISTINCT k FROM marts.customer_segments")
    assert published == 6 and why


@pytest.mark.parametrize("method", ["kmeans", "ward"])
def test_each_method_recovers_the_planted_groups(run, method):
    _, workdir, planted = run
    joined = _with_planted(workdir, planted, f"{method}_cluster AS cluster")
    assert adjusted_rand_score(joined["group"], joined["cluster"]) >= 0.8


# The label each planted behaviour should get from its numbers (synthetic.GROUPS).
INTENDED = {
    "champions": "champions",
    "loyal_regulars": "frequent",
    "big_ticket_occasional": "big-spender",
    "new_customers": "new",
    "lapsing": "at-risk",
    "one_off": "lapsed",
}


def test_each_planted_group_gets_its_intended_label(run):
    _, workdir, planted = run
    joined = _with_planted(workdir, planted, "label")
    share = joined.assign(intended=joined["group"].map(INTENDED)).pipe(
        lambda t: (t["label"] == t["intended"]).groupby(t["group"]).mean()
    )
    assert set(share.index) == set(INTENDED)
    assert (share >= 0.9).all(), share.to_dict()


def test_no_customer_who_bought_recently_is_told_they_are_being_won_back(run):
    _, workdir, _ = run
    told, typical, _ = told_to_win_back(workdir)
    assert len(told) > 1000  # the lapsing and one-off groups are told, and only they
    assert (told["recency_days"] > typical).all()
    actions = query(workdir, "SELECT label, recommendation FROM marts.segment_profiles")
    assert all(("win them back" in text) == (label == "at-risk") for label, text in actions)


def test_published_method_is_the_one_the_comparison_favours(run):
    _, workdir, _ = run
    rows = query(
        workdir, "SELECT method, silhouette, selected FROM marts.method_comparison ORDER BY silhouette DESC"
    )
    assert sorted(r[0] for r in rows) == ["kmeans", "ward"]
    assert rows[0][2] or rows[0][1] == rows[1][1]  # the higher silhouette is selected (a tie keeps K-Means)
    [(method,)] = query(workdir, "SELECT DISTINCT method FROM marts.customer_segments")
    assert method == next(r[0] for r in rows if r[2])


def test_the_top_spending_most_frequent_segment_is_labelled_champions(run):
    _, workdir, _ = run
    rows = query(
        workdir,
        "SELECT label, median_monetary, median_frequency FROM marts.segment_profiles ORDER BY 2 DESC",
    )
    top = rows[0]
    assert top[2] == max(r[2] for r in rows)  # on this data the biggest spenders are also the most frequent
    assert top[0] == "champions"


def test_every_featured_customer_has_an_rfm_segment_and_scores(run):
    _, workdir, _ = run
    [(missing, scores)] = query(
        workdir,
        "SELECT count(*) FILTER (WHERE rfm_segment IS NULL), "
        "count(DISTINCT r_score) + count(DISTINCT f_score) + count(DISTINCT m_score) "
        "FROM marts.customer_features",
    )
    assert missing == 0 and scores >= 12


def test_the_report_is_one_self_contained_page_with_the_run_and_its_segments(run):
    result, workdir, _ = run
    page = (workdir / "reports" / "index.html").read_text()
    assert not re.findall(r'<img src="(?!data:image/png;base64,)', page)  # every figure embedded
    assert not list((workdir / "reports").glob("*.png"))
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 11
    assert result.run_id in page and "transactions.csv" in page and "generated" in page
    [(as_of,)] = query(workdir, "SELECT max(as_of) FROM marts.customer_features")
    assert str(as_of) in page
    headings = re.findall(r"<h2 id='([^']+)'>", page)
    assert headings[:3] == ["key-decisions", "segments-and-what-to-do", "value-and-churn"]
    assert headings[-1].startswith("appendix") and all(f"href='#{h}'" in page for h in headings)
    assert "overruling the elbow" in page
    for segment, recommendation in query(
        workdir, "SELECT segment, recommendation FROM marts.segment_profiles"
    ):
        assert f"<h3>{segment}</h3><p>{html.escape(recommendation)}</p>" in page
    # Numbers read as people write them: no "15.00" median invoices, no "307,024.00" lines, no "45.10".
    cells = re.findall(r"<td [^>]*>([^<]*)</td>", page)
    assert len(cells) > 100
    assert not [c for c in cells if re.fullmatch(r"-?[\d,]+\.\d*0", c.strip())]


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
        ("customer_value", "value_gate"),
        ("customer_segments", "segments_gate"),
        ("transaction_history", "every_file_loaded"),  # a warning when a file is refused
        *(("customer_segments", check) for check in DRIFT_CHECKS),  # warnings, against the previous run
    }
    for evaluation in evaluations:
        assert evaluation.passed
        if evaluation.check_name in ("every_file_loaded", *DRIFT_CHECKS):
            assert evaluation.severity.value == "WARN"
            continue
        assert evaluation.severity.value == "ERROR"
        rules = [label for label in evaluation.metadata if label.startswith("pass: ")]
        assert len(rules) == evaluation.metadata["evaluated"].value >= 6


CHROMIUM = shutil.which("chromium")
# Measures the page as laid out at 1400 px: anything wider than the window or wider than its box is clipped
# (or scrolls), and each figure's width against the text column it sits in.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const clipped = [...document.querySelectorAll("body *")]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible")
    .map(e => e.tagName);
  const column = document.querySelector("h2").getBoundingClientRect().width;
  const figures = [...document.querySelectorAll("figure img")]
    .map(i => i.getBoundingClientRect().width / column);
  const probe = document.createElement("pre");
  probe.id = "layout";
  probe.textContent = JSON.stringify({
    page: document.documentElement.scrollWidth, window: window.innerWidth, clipped, figures,
  });
  document.body.appendChild(probe);
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_the_report_reads_in_a_browser_at_1400_px(run, tmp_path):
    _, workdir, _ = run
    page = (workdir / "reports" / "index.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", LAYOUT_PROBE))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
        "--hide-scrollbars",
    ]
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={screenshot}", probed.as_uri()], timeout=120, capture_output=True
    )
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", probed.as_uri()], timeout=120, capture_output=True, text=True
    ).stdout
    layout = json.loads(html.unescape(re.search(r'<pre id="layout">(.*?)</pre>', dom).group(1)))
    assert layout["page"] <= layout["window"] == 1400, layout  # no sideways scrolling
    assert layout["clipped"] == [], layout  # no table or block cut off
    assert len(layout["figures"]) == 11 and min(layout["figures"]) > 0.95, layout  # figures at page width
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
