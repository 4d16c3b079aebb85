"""A project Dagster's own tools recognise: `dg` lists and checks it, and the plain `dagster` CLI runs every
asset from a fresh copy with no setting given, into that copy's `data/`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import duckdb
import pytest

from retail_seg_tests.pipeline import ALL_ASSETS
from retail_seg_tests.servers import REPO, VENV_BIN

# Which assets keep data about people, and which kind: the tag lets `tag:personal_data` select them.
PERSONAL_DATA = {
    "raw_transactions": "demographics",
    "clean_transactions": "demographics",
    "rejected_rows": "demographics",
    "transaction_history": "demographics",
    "customers": "demographics",
    "model_features": "demographics",
    "customer_features": "customer_id",
    "customer_value": "customer_id",
    "customer_segments": "customer_id",
    "segment_history": "customer_id",
    "segment_migration": "customer_id",
    "audiences": "customer_id",
}


def _fresh_environment() -> dict[str, str]:
    """The environment of a new user: no project setting, no Dagster home, the project's venv first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_SEG_") and k != "DAGSTER_HOME"}
    return {**env, "VIRTUAL_ENV": str(VENV_BIN.parent), "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The files a clean clone would hold (tracked, and new files not ignored), without `data/`'s contents."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    copy = tmp_path_factory.mktemp("clone") / "retail_seg"
    for name in listed:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    assert not (copy / "data" / "warehouse.duckdb").exists()
    return copy


def test_dg_checks_and_lists_every_definition(clone):
    env = _fresh_environment()
    checked = subprocess.run(["dg", "check", "defs"], cwd=clone, env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run(
        ["dg", "list", "defs", "--json"], cwd=clone, env=env, capture_output=True, text=True, check=True
    )
    defs = json.loads(listed.stdout)
    assets = {a["asset_key"]: a for a in defs["assets"]}
    assert set(assets) == ALL_ASSETS
    assert {j["name"] for j in defs["jobs"]} == {"segment_customers", "load_files"}
    assert len(defs["asset_checks"]) == 12  # five gates, a warning on the loads, six drift warnings
    for key, asset in assets.items():
        assert asset["owners"], f"{key} has no owner"
        tags = {t["key"]: t["value"] for t in asset["tags"]}
        assert "layer" in tags
        assert tags.get("personal_data") == PERSONAL_DATA.get(key), key


def test_the_plain_dagster_cli_runs_the_job_into_data(clone):
    env = {**_fresh_environment(), "PYTHONPATH": str(clone)}  # the copy's package, not the checkout's
    run = subprocess.run(
        [
            str(VENV_BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "retail_seg.definitions",
            "-j",
            "segment_customers",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = clone / "data"
    assert (data / "synthetic" / "transactions.csv").is_file()  # the default data, generated on first use
    assert (data / "reports" / "index.html").is_file()
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        [(customers, runs)] = conn.execute(
            "SELECT (SELECT count(*) FROM marts.customer_segments), (SELECT count(*) FROM audit.runs)"
        ).fetchall()
        [(source,)] = conn.execute("SELECT source_file FROM raw.loads").fetchall()
    assert customers > 4900 and runs == 1
    assert source == str(data / "synthetic" / "transactions.csv")
