"""The right to erasure, end to end: after `python -m retail_seg erase customer ID` the id is nowhere in
the warehouse, the lake's partitions or the exports, the audit record does not name it, and the next run
does not bring it back."""

import csv
import hashlib
import json
import subprocess
import sys

import duckdb
import pytest

from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.pipeline import materialize_all, query
from retail_seg_tests.runs import published_state
from retail_seg_tests.servers import REPO, project_environment

AUDIENCES = [{"name": "everyone", "where": "true", "control_share": 0.2}]


def _config(as_of: str) -> dict:
    return {
        "ops": {
            "customer_features": {"config": {"as_of": as_of}},
            "audiences": {"config": {"audiences": AUDIENCES}},
        }
    }


def _erase(env: dict, customer_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retail_seg", "erase", "customer", customer_id],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# The id in any spelling a file gives it: spaces around it, a spreadsheet's ".0" after it.
SPELLED = "regexp_replace(trim(CAST({column} AS VARCHAR)), '\\.0+$', '') = $id"


def _parquet_holding(path, customer_id: str) -> bool:
    with duckdb.connect() as conn:
        columns = [
            row[0] for row in conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        ]
        if "customer_id" not in columns:
            return False
        sql = f"SELECT count(*) FROM read_parquet($path) WHERE {SPELLED.format(column='customer_id')}"
        return conn.execute(sql, {"path": str(path), "id": customer_id}).fetchone()[0] > 0


def _csv_holding(path, customer_id: str) -> bool:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    column = rows[0].index("customer_id") if rows and "customer_id" in rows[0] else None
    return column is not None and any(
        row[column].strip().removesuffix(".0") == customer_id for row in rows[1:]
    )


def _tables_holding(workdir, customer_id: str) -> list[str]:
    """Every table and view with the id in its customer_id column, in any spelling."""
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.columns WHERE column_name = "
            "'customer_id' AND table_schema IN ('raw', 'staging', 'marts', 'reports', 'audit')"
        ).fetchall()
        where = SPELLED.format(column="customer_id")
        return [
            t
            for (t,) in tables
            if conn.execute(f"SELECT count(*) FROM {t} WHERE {where}", {"id": customer_id}).fetchone()[0]
        ]


def _everywhere(workdir, customer_id: str) -> list[str]:
    """Every place under `workdir` (tables and views, Parquet and CSV files) holding the id exactly."""
    found = _tables_holding(workdir, customer_id)
    for path in sorted(workdir.rglob("*")):
        if "dagster_home" in path.parts or "source" in path.parts or not path.is_file():
            continue
        if (path.suffix == ".parquet" and _parquet_holding(path, customer_id)) or (
            path.suffix == ".csv" and _csv_holding(path, customer_id)
        ):
            found.append(str(path.relative_to(workdir)))
    return found


@pytest.fixture(scope="module")
def erased(tmp_path_factory):
    """Two runs a month apart, then one customer erased; the customer chosen to be everywhere: segmented,
    in an audience, in both runs' history and with a rejected line in the lake."""
    workdir = tmp_path_factory.mktemp("erasure")
    source, _ = write_synthetic(workdir / "source", customers=600, seed=3)
    lines = source.read_text().splitlines()
    customer_id = next(line.split(",")[6] for line in lines[1:] if line.split(",")[6])
    # The same customer spelled as a spreadsheet writes it, on a line staging rejects (zero quantity);
    # and another customer's purchase of a product whose code is the customer's id, which must stay.
    source.write_text(
        "\n".join(
            [
                *lines,
                f"999001,85123A,ODD LINE,0,2.5,2025-11-01 10:00:00, {customer_id}.0 ,United Kingdom,,,Home",
                f"999002,{customer_id},CODED LIKE AN ID,2,2.5,2025-11-01 10:00,OTHER1,United Kingdom,,,Home",
            ]
        )
        + "\n"
    )
    env = {**project_environment(workdir, source), "RETAIL_SEG_ID_KEY": "test-key"}
    first = materialize_all(source, workdir, run_config=_config("2025-12-01"))
    second = materialize_all(source, workdir, run_config=_config("2025-12-31"))
    assert first.success and second.success
    held = query(workdir, "SELECT count(*) FROM audit.segment_history WHERE customer_id = ?", [customer_id])
    assert held == [(2,)]
    before = {
        "places": _everywhere(workdir, customer_id),
        "customers": query(workdir, "SELECT count(*) FROM marts.customer_segments")[0][0],
        "history": query(workdir, "SELECT count(*) FROM audit.segment_history")[0][0],
        "spelled": query(
            workdir, "SELECT customer_id FROM staging.rejected_rows WHERE invoice_no = '999001'"
        ),
    }
    done = _erase(env, customer_id)
    return workdir, env, source, customer_id, before, done


def test_the_customer_was_everywhere_before(erased):
    _, _, _, _, before, _ = erased
    places = before["places"]
    for where in (
        "marts.customer_segments",
        "audit.segment_history",
        "staging.rejected_rows",
        "staging.customers",
    ):
        assert where in places, where
    assert any(".warehouse.lake/" in p and p.endswith("lines.parquet") for p in places)
    assert any(".warehouse.lake/" in p and p.endswith("rejected.parquet") for p in places)
    assert before["spelled"] == [(f" {erased[3]}.0 ",)]  # a rejected line keeps the id as the file wrote it
    assert sum("exports/" in p and p.endswith(".csv") for p in places) >= 4  # two runs, segment + audience


def test_after_erase_the_id_is_nowhere(erased):
    workdir, _, _, customer_id, before, done = erased
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"erased customer {customer_id}:" in done.stdout
    assert _everywhere(workdir, customer_id) == []
    # The line of the product coded like the id is another customer's: it stays.
    assert query(workdir, "SELECT customer_id FROM staging.transactions WHERE invoice_no = '999002'") == [
        ("OTHER1",)
    ]
    # Only that customer: one fewer segmented, two history rows fewer (one per run).
    assert query(workdir, "SELECT count(*) FROM marts.customer_segments")[0][0] == before["customers"] - 1
    assert query(workdir, "SELECT count(*) FROM audit.segment_history")[0][0] == before["history"] - 2
    # No earlier publication (which held the customer) is left on disk.
    publications = {p.name for p in (workdir / ".warehouse.publications").iterdir()}
    assert publications == {
        "current",
        "lock",
        (workdir / ".warehouse.publications" / "current").readlink().name,
    }


def test_the_exports_still_match_their_manifests(erased):
    workdir = erased[0]
    for manifest in (workdir / "exports").glob("*/manifest.json"):
        for entry in json.loads(manifest.read_text())["files"]:
            data = (manifest.parent / entry["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
            if entry["path"].endswith(".csv"):
                assert data.count(b"\n") - 1 == entry["rows"], entry["path"]
        manifest_data = json.loads(manifest.read_text())
        rows = {f["path"]: f["rows"] for f in manifest_data["files"]}
        for audience in manifest_data["audiences"]:  # the counts a sync checks, true after the erasure
            name = audience["name"]
            assert audience["target"] == rows[f"audiences/{name}.csv"]
            assert audience["control"] == rows[f"audiences/{name}.control.csv"]
            assert audience["entered"] + audience["left"] == rows[f"audiences/{name}.changes.csv"]


def test_the_audit_record_says_what_was_removed_but_not_who(erased):
    workdir, _, _, customer_id, _, _ = erased
    [row] = query(workdir, "SELECT * FROM audit.erasures")
    text = json.dumps(row, default=str)
    assert customer_id not in text
    for digest in (hashlib.sha256, hashlib.md5):
        assert digest(customer_id.encode()).hexdigest()[:12] not in text
    rows_by_table = json.loads(row[2])
    assert rows_by_table["marts.customer_segments"] == 1 and rows_by_table["audit.segment_history"] == 2
    assert row[3] >= 2 and row[4] >= 2 and row[5] >= 4  # lake files and lines, export files


def test_the_next_run_keeps_the_customer_erased_and_applies_retention(erased):
    workdir, _, source, customer_id, _, _ = erased
    runs = [r for (r,) in query(workdir, "SELECT run_id FROM audit.runs ORDER BY recorded_at")]
    config = _config("2025-12-31")
    config["ops"]["segment_history"] = {"config": {"keep_runs": 2}}
    config["ops"]["audiences"]["config"]["keep_runs"] = 2
    again = materialize_all(source, workdir, run_config=config)
    assert again.success
    assert _everywhere(workdir, customer_id) == []
    # Three runs recorded, the newest two keep their per-customer history; the first keeps its record.
    kept = {r for (r,) in query(workdir, "SELECT DISTINCT run_id FROM audit.segment_history")}
    assert kept == {runs[1], again.run_id}
    assert {r for (r,) in query(workdir, "SELECT run_id FROM audit.runs")} == {*runs, again.run_id}
    assert not query(workdir, "SELECT 1 FROM audit.audience_history WHERE run_id = ?", [runs[0]])
    # The newest two runs' exports are left, and the audit trail says what went.
    folders = {p.name for p in (workdir / "exports").iterdir() if not p.is_symlink()}
    assert folders == {runs[1], again.run_id}
    removed = query(
        workdir, "SELECT run_id, what, rows FROM audit.retention WHERE by_run = ?", [again.run_id]
    )
    assert {(r, w) for r, w, _ in removed} == {
        (runs[0], "audit.segment_history rows"),
        (runs[0], "audit.audience_history rows"),
        (runs[0], "exports folder files"),
    }
    assert all(n > 0 for _, _, n in removed)


def test_an_unknown_customer_changes_nothing(erased):
    workdir, env, *_ = erased
    state = published_state(workdir)
    done = _erase(env, "no-such-customer")
    assert done.returncode == 66 and "nothing erased" in done.stderr
    assert published_state(workdir) == state
