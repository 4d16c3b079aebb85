"""`python -m retail_seg run`: exit codes and messages a scheduler or a person can act on."""

import json
import shutil
import subprocess
import sys

import duckdb
import pytest

from retail_seg.cli import main
from retail_seg.core.synthetic import write_synthetic
from retail_seg.core.warehouse import published_checksums
from retail_seg_tests.runs import published_content, published_state
from retail_seg_tests.servers import REPO, project_environment


def _environment(monkeypatch, tmp_path, source):
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("RETAIL_SEG_SOURCE", str(source))
    monkeypatch.setenv("RETAIL_SEG_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("RETAIL_SEG_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("RETAIL_SEG_INCOMING", str(tmp_path / "incoming"))
    monkeypatch.setenv("RETAIL_SEG_MEMORY_LIMIT", "1GB")


def _checksums(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        return published_checksums(conn)


def test_a_refused_file_exits_65_names_it_and_changes_nothing_it_derives(monkeypatch, tmp_path, capsys):
    source, _ = write_synthetic(tmp_path / "data", customers=300, seed=2)
    _environment(monkeypatch, tmp_path, source)
    assert main(["run"]) == 0
    assert "report: " in capsys.readouterr().out
    before = _checksums(tmp_path)
    assert len(before) == 34  # every table of raw, staging, marts, reports and audit, and the history views
    derived = _derived(tmp_path)

    broken = tmp_path / "data" / "broken.csv"
    lines = source.read_text().splitlines()
    broken.write_text("\n".join(",".join(line.split(",")[:5] + line.split(",")[6:]) for line in lines) + "\n")
    monkeypatch.setenv("RETAIL_SEG_SOURCE", str(broken))
    assert main(["run"]) == 65  # published over the history, without the refused file: loud
    captured = capsys.readouterr()
    assert "succeeded" in captured.out
    assert "published without a refused file" in captured.err
    assert "broken.csv refused" in captured.err and "missing column 'invoice_date'" in captured.err
    assert _derived(tmp_path) == derived


def _derived(tmp_path) -> dict[str, tuple]:
    """The history and what it derives, run ids aside (the migration compares with the run before)."""
    since = (
        "marts.segment_migration",
        "marts.fallen_from_high_value",
        "marts.segment_identity",
        "marts.segment_drift",
    )
    return {
        table: content
        for table, content in published_content(tmp_path).items()
        if table.startswith(("staging.", "marts.")) and table not in since
    }


# Each kind of failure has its own exit code and sentence ----------------------------------------------


def _mount_namespaces() -> bool:
    """Whether this machine lets a test give one process a disk of its own (root, or user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(
    not _mount_namespaces(),
    reason="needs mount namespaces (unshare -m) to give a run a full or read-only disk",
)
HOLDER = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A folder holding a warehouse and report after one good run, and the environment that made it."""
    workdir = tmp_path_factory.mktemp("published")
    source, _ = write_synthetic(workdir / "source", customers=300, seed=2)
    warehouse = workdir / "warehouse"
    env = project_environment(warehouse, source)
    assert (
        subprocess.run(
            [sys.executable, "-m", "retail_seg", "run"], cwd=REPO, env=env, capture_output=True
        ).returncode
        == 0
    )
    return warehouse, env


def _in_own_mounts(script: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "-m", "sh", "-euc", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@needs_mounts
def test_a_full_disk_exits_74_with_a_sentence_and_publishes_nothing(published, tmp_path):
    warehouse, env = published
    # What it holds as tmpfs counts it: whole 4 kB pages per file, and a page per folder.
    used = sum(
        -(-p.stat().st_size // 4096) * 4096 if p.is_file() else 4096
        for p in warehouse.rglob("*")
        if not p.is_symlink()
    )
    before = published_state(warehouse)
    home = tmp_path / "dagster_home"  # the instance elsewhere: it is the warehouse that runs out of room
    shutil.copytree(warehouse / "dagster_home", home)
    # The warehouse's folder, on a disk with room for what it holds and 64 kB more.
    outcome = _in_own_mounts(
        f"""
        cp -a {warehouse} {tmp_path}/seed
        mount -t tmpfs -o size={used + 64 * 1024} tmpfs {warehouse}
        cp -a {tmp_path}/seed/. {warehouse}/
        status=0; {sys.executable} -m retail_seg run > {tmp_path}/run.log 2>&1 || status=$?
        echo "exit $status"
        {sys.executable} -m retail_seg_tests.runs {warehouse}
        """,
        {**env, "DAGSTER_HOME": str(home)},
        REPO,
    )
    assert outcome.stdout.count("\n") >= 2, outcome.stderr
    code, state = outcome.stdout.splitlines()[-2:]
    log = (tmp_path / "run.log").read_text()
    assert code == "exit 74", outcome.stderr + log[-2000:]
    assert "the disk is full" in log and "No space left on device" in log
    assert json.loads(state) == json.loads(json.dumps(before))


@needs_mounts
def test_a_read_only_folder_exits_77_with_a_sentence_and_publishes_nothing(published, tmp_path):
    warehouse, env = published
    before = published_state(warehouse)
    home = tmp_path / "dagster_home"  # the instance elsewhere: it is the warehouse's folder that is read-only
    shutil.copytree(warehouse / "dagster_home", home)
    outcome = _in_own_mounts(
        f"""
        mount --bind {warehouse} {warehouse} && mount -o remount,bind,ro {warehouse}
        status=0; {sys.executable} -m retail_seg run > {tmp_path}/run.log 2>&1 || status=$?
        echo "exit $status"
        """,
        {**env, "DAGSTER_HOME": str(home)},
        REPO,
    )
    log = (tmp_path / "run.log").read_text()
    assert outcome.stdout.splitlines()[-1] == "exit 77", outcome.stderr + log[-2000:]
    assert "cannot write: a folder the run writes" in log and "Read-only file system" in log
    assert published_state(warehouse) == before


def test_a_busy_warehouse_exits_75_and_says_who_holds_it(published, capsys):
    warehouse, _ = published
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(warehouse / "warehouse.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["audit", "customer", "x", "--warehouse", str(warehouse / "warehouse.duckdb")]) == 75
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "the warehouse is busy: another process holds it" in err and f"pid {holder.pid}" in err


def test_a_missing_source_exits_66(published, tmp_path):
    _, env = published
    run = subprocess.run(
        [sys.executable, "-m", "retail_seg", "run"],
        cwd=REPO,
        env={**env, "RETAIL_SEG_SOURCE": str(tmp_path / "nowhere.csv")},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 66, run.stdout[-2000:]
    assert "nowhere.csv: source file not found" in run.stdout
