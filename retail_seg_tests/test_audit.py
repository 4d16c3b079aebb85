"""Audit: two runs a month apart leave two records, both assignments, a migration that adds up, a history."""

import datetime as dt
import json

import pytest

from retail_seg.cli import main
from retail_seg.core.sources import file_sha256
from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.pipeline import materialize_all, query


def _as_of(date: str) -> dict:
    return {"ops": {"customer_features": {"config": {"as_of": date}}}}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit")
    source, _ = write_synthetic(workdir / "source", customers=600, seed=9)
    first = materialize_all(source, workdir, run_config=_as_of("2025-11-01"))
    second = materialize_all(source, workdir, run_config=_as_of("2025-12-01"))
    assert first.success and second.success
    return workdir, source, first.run_id, second.run_id


def test_each_run_is_recorded_with_its_lineage(two_runs):
    workdir, source, first, second = two_runs
    runs = query(
        workdir,
        "SELECT run_id, as_of, source_file, source_sha256, row_counts, rejected_by_rule, metrics, "
        "code_versions FROM audit.runs ORDER BY recorded_at",
    )
    assert [r[0] for r in runs] == [first, second]
    assert [str(r[1]) for r in runs] == ["2025-11-01", "2025-12-01"]
    for _, _, source_file, digest, counts, rejected, metrics, versions in runs:
        assert source_file == str(source) and digest == file_sha256(source)
        assert json.loads(counts)["marts.customer_segments"] > 0
        assert json.loads(rejected)["missing_customer_id"] > 0
        assert set(json.loads(metrics)) == {"kmeans", "ward"}
        assert json.loads(versions)["customer_segments"] is not None


def test_history_holds_every_customer_of_both_runs(two_runs):
    workdir, _, first, second = two_runs
    counts = dict(query(workdir, "SELECT run_id, count(*) FROM audit.segment_history GROUP BY run_id"))
    [(segmented,)] = query(workdir, "SELECT count(*) FROM marts.customer_segments")
    assert counts[second] == segmented
    assert 0 < counts[first] < counts[second]  # a month earlier, fewer customers had bought


def test_migration_counts_add_up_to_customers_in_both_runs(two_runs):
    workdir, _, first, second = two_runs
    [(in_both,)] = query(
        workdir,
        "SELECT count(*) FROM audit.segment_history a JOIN audit.segment_history b USING (customer_id) "
        f"WHERE a.run_id = '{first}' AND b.run_id = '{second}'",
    )
    [(total, previous)] = query(
        workdir, "SELECT sum(customers), max(previous_run) FROM marts.segment_migration"
    )
    assert total == in_both > 0 and previous == first
    fallen = query(workdir, "SELECT from_label, to_label FROM marts.fallen_from_high_value")
    assert all(before == "champions" and now != "champions" for before, now in fallen)


def test_audit_customer_prints_every_run(two_runs, capsys):
    workdir, _, first, second = two_runs
    [(customer,)] = query(
        workdir, f"SELECT customer_id FROM audit.segment_history WHERE run_id = '{first}' ORDER BY 1 LIMIT 1"
    )
    assert main(["audit", "customer", customer, "--warehouse", str(workdir / "warehouse.duckdb")]) == 0
    out = capsys.readouterr().out
    assert f"customer {customer}: 2 recorded run(s)" in out
    assert first in out and second in out and "features as of 2025-11-01" in out
    [(segment_id, segment, recency, own, other)] = query(
        workdir,
        "SELECT segment_id, segment, recency_days, distance_to_centre, distance_to_nearest_other "
        f"FROM audit.segment_history WHERE run_id = '{second}' AND customer_id = '{customer}'",
    )
    assert f"segment {segment_id} '{segment}'" in out and f"last purchase {recency} days before" in out
    assert f"distance to its segment's centre {own:.2f}, to the nearest other {other:.2f}" in out
    assert own <= other  # a customer sits nearer its own segment's centre than any other
    assert "churn risk" in out and "code versions: customer_features" in out


def test_audit_customer_as_json_and_as_of_a_date(two_runs, capsys):
    workdir, _, _, second = two_runs
    warehouse = str(workdir / "warehouse.duckdb")
    [(customer, segment_id, clv)] = query(
        workdir,
        f"SELECT customer_id, segment_id, clv FROM audit.segment_history WHERE run_id = '{second}' LIMIT 1",
    )
    assert main(["audit", "customer", customer, "--warehouse", warehouse, "--format", "json"]) == 0
    told = json.loads(capsys.readouterr().out)
    assert told["customer_id"] == customer and len(told["runs"]) == 2
    latest = told["runs"][-1]
    assert latest["run_id"] == second and latest["segment_id"] == segment_id
    assert latest["clv"] == pytest.approx(clv) and 0 <= latest["churn_risk"] <= 1
    assert set(latest["features"]) == {"recency_days", "frequency", "monetary"}
    # On a date, the assignment then in force: the last run published by that day, or none before any.
    today = dt.date.today().isoformat()
    assert (
        main(["audit", "customer", customer, "--warehouse", warehouse, "--format", "json", "--as-of", today])
        == 0
    )
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == [second]
    assert main(["audit", "customer", customer, "--warehouse", warehouse, "--as-of", "2000-01-01"]) == 66
    assert "published by 2000-01-01" in capsys.readouterr().err


def test_audit_customer_unknown_is_not_found(two_runs, capsys):
    workdir, *_ = two_runs
    assert (
        main(["audit", "customer", "nobody", "--warehouse", str(workdir / "warehouse.duckdb")]) == 66
    )  # not found
    assert "not in any recorded run" in capsys.readouterr().err
