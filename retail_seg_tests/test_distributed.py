"""The distributed profile on real servers: Redis and Postgres from the machine's packages, Celery workers
as separate processes, `python -m retail_seg run` over a history of many files.

Skipped only where the servers are not installed and RETAIL_SEG_REQUIRE_SERVERS is unset; `.ci/run`
installs them and sets it, so CI never skips.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from retail_seg import cluster
from retail_seg.core.lake import Lake
from retail_seg.core.publication import PAUSE_VARIABLE, PAUSED
from retail_seg.core.synthetic import write_synthetic
from retail_seg.definitions import LOAD_JOB
from retail_seg_tests.runs import published_content, wait_for
from retail_seg_tests.servers import REPO, project_environment, session_processes

pytestmark = pytest.mark.slow
FILES = 8
# For the kill: longer than any load here takes (a shorter one hands a running load to a second worker too).
REDELIVER_SECONDS = "20"


def _require_servers() -> None:
    """Skip where Redis or Postgres is not installed, unless this machine must have them (CI)."""
    try:
        cluster._program("redis-server")
        cluster.postgres_bin("postgres")
    except cluster.ServerMissing:
        if os.environ.get("RETAIL_SEG_REQUIRE_SERVERS"):
            pytest.fail("redis-server and postgres must be installed here (.ci/run installs them)")
        pytest.skip("redis-server or postgres is not installed")


@pytest.fixture(scope="module")
def servers():
    """Redis and Postgres on loopback for this module (Postgres as its own user when we are root)."""
    _require_servers()
    folder = Path(tempfile.mkdtemp(prefix="retail_seg_servers_"))
    folder.chmod(0o755)  # the postgres user must reach its data folder inside
    redis_port, postgres_port = cluster.free_port(), cluster.free_port()
    processes = {"redis": cluster.start_redis(folder / "redis", redis_port)}
    try:
        processes["postgres"] = cluster.start_postgres(folder / "postgres", postgres_port)
        yield cluster.Servers(folder, redis_port, postgres_port, processes)
    finally:
        for process in processes.values():
            cluster.stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def _database(servers: cluster.Servers, name: str) -> str:
    """A Postgres database of its own for one test's Dagster instance."""
    psql = [cluster.postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(servers.postgres_port)]
    subprocess.run(
        [*psql, "-U", cluster.POSTGRES_USER, "-d", "postgres", "-c", f"CREATE DATABASE {name}"],
        check=True,
        capture_output=True,
    )
    return servers.postgres_url.rsplit("/", 1)[0] + f"/{name}"


def _profile(servers: cluster.Servers, workdir: Path, source: Path, redis_db: int) -> dict[str, str]:
    """The settings of a distributed run over `workdir`: its own broker database and Dagster instance."""
    env = project_environment(workdir, source)
    home = cluster.instance_home(workdir)
    broker = f"redis://127.0.0.1:{servers.redis_port}"
    return {
        **env,
        **servers.environment(),
        "DAGSTER_HOME": str(home),
        cluster.POSTGRES_URL: _database(servers, workdir.name.replace("-", "_")),
        "RETAIL_SEG_CELERY_BROKER": f"{broker}/{redis_db}",
        "RETAIL_SEG_CELERY_BACKEND": f"{broker}/{redis_db + 1}",
    }


def _history(folder: Path, files: int) -> list[Path]:
    """The seeded data of 600 customers as `files` exports, each invoice in one of them."""
    transactions, _ = write_synthetic(folder / "generated", customers=600, seed=7)
    with transactions.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        parts: list[list[list[str]]] = [[] for _ in range(files)]
        for row in reader:
            parts[int(hashlib.md5(row[0].encode()).hexdigest(), 16) % files].append(row)
    exports = folder / "exports_in"
    exports.mkdir()
    paths = []
    for n, rows in enumerate(parts):
        path = exports / f"orders_{n:02d}.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
        paths.append(path)
    return paths


def _run(env: dict[str, str], log: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    with log.open("w") as out:
        return subprocess.run(
            [sys.executable, "-m", "retail_seg", "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )


def _workers(env: dict[str, str], folder: Path, *names: str, **extra: str) -> list[subprocess.Popen]:
    workers = [cluster.start_worker({**env, **extra}, name, folder / f"{name}.log") for name in names]
    try:
        cluster.wait_for_workers(env, list(names))
    except BaseException:  # the caller never gets them to stop: stopped here, not left running
        for worker in workers:
            cluster.stop(worker)
        raise
    return workers


def _loads(env: dict[str, str]) -> list[dict]:
    """Every load run in the instance: its file, status, the workers that executed its step, and when.
    The caller sets RETAIL_SEG_POSTGRES_URL, which the instance settings read."""
    found = []
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=LOAD_JOB)):
            events = instance.all_logs(run.run_id)
            workers = [
                entry.dagster_event.event_specific_data.metadata["Celery worker"].value
                for entry in events
                if entry.dagster_event
                and entry.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
                and "Celery worker" in (entry.dagster_event.event_specific_data.metadata or {})
            ]
            kinds = [entry.dagster_event for entry in events if entry.dagster_event]
            times = {
                entry.dagster_event.event_type: entry.timestamp
                for entry in events
                if entry.dagster_event and entry.dagster_event.is_step_event
            }
            found.append(
                {
                    "run_id": run.run_id,
                    "file": Path(run.tags["retail_seg/source"]).name,
                    "failed_once": any(e.event_type == dg.DagsterEventType.RUN_FAILURE for e in kinds),
                    "status": run.status,
                    "workers": [w.split("@")[0] for w in workers],
                    "start": times.get(dg.DagsterEventType.STEP_START),
                    "end": times.get(
                        dg.DagsterEventType.STEP_SUCCESS, times.get(dg.DagsterEventType.STEP_FAILURE)
                    ),
                    "materialized": sorted(
                        e.asset_key.to_user_string() for e in kinds if e.is_step_materialization
                    ),
                    "checks": {
                        e.event_specific_data.check_name: e.event_specific_data.passed
                        for e in kinds
                        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                    },
                }
            )
    return found


def _in_process(tmp_path: Path, source: Path) -> dict:
    """What the default profile (one process, SQLite instance) publishes from the same files."""
    workdir = tmp_path / "in_process"
    workdir.mkdir()
    env = project_environment(workdir, source)
    result = _run(env, workdir / "run.log")
    assert result.returncode in (0, 65), (workdir / "run.log").read_text()[-3000:]
    return published_content(workdir, decimals=6)


def test_many_files_load_on_both_workers_at_once_and_publish_what_one_process_does(
    servers, tmp_path, monkeypatch
):
    paths = _history(tmp_path, FILES)
    # One export arrives broken (its quantities are words): its load's gate refuses it on a worker.
    broken = paths[-1]
    with broken.open(newline="") as handle:
        rows = list(csv.reader(handle))
    quantity = rows[0].index("quantity")
    with broken.open("w", newline="") as handle:
        csv.writer(handle).writerows(
            [rows[0], *([*r[:quantity], "a few", *r[quantity + 1 :]] for r in rows[1:])]
        )
    workdir = tmp_path / "distributed"
    workdir.mkdir()
    env = _profile(servers, workdir, paths[0].parent, redis_db=0)
    workers = _workers(env, workdir, "worker1", "worker2")
    try:
        result = _run(env, workdir / "run.log")
    finally:
        for worker in workers:
            cluster.stop(worker)
    log = (workdir / "run.log").read_text()
    assert result.returncode == 65, log[-3000:]  # published, without the refused file
    assert f"{broken.name}: REFUSED" in log

    monkeypatch.setenv(cluster.POSTGRES_URL, env[cluster.POSTGRES_URL])
    loads = _loads(env)
    assert sorted(load["file"] for load in loads) == sorted(p.name for p in paths)
    by_file = {load["file"]: load for load in loads}
    assert by_file[broken.name]["status"] == dg.DagsterRunStatus.FAILURE
    assert all(by_file[p.name]["status"] == dg.DagsterRunStatus.SUCCESS for p in paths[:-1])
    # Every load's step ran on a worker, and both workers took loads, some of them at the same time.
    assert all(len(load["workers"]) == 1 for load in loads)
    assert {load["workers"][0] for load in loads} == {"worker1", "worker2"}
    overlapping = [
        (a["file"], b["file"])
        for a in loads
        for b in loads
        if a["workers"] != b["workers"] and a["start"] < b["end"] and b["start"] < a["end"]
    ]
    assert overlapping, loads
    # The broken file's gate blocked it on its worker: nothing of it materialized, nothing in force.
    assert by_file[broken.name]["checks"] == {"raw_gate": False}
    assert by_file[broken.name]["materialized"] == []
    assert by_file[paths[0].name]["materialized"] == [
        "clean_transactions",
        "raw_transactions",
        "rejected_rows",
    ]
    accepted = Lake(workdir / "warehouse.duckdb").accepted()
    assert set(accepted) == {p.name for p in paths[:-1]}
    # The history is the workers' loads, each by its own run; the publication loaded nothing itself.
    assert {key: record.run_id for key, record in accepted.items()} == {
        load["file"]: load["run_id"] for load in loads if load["file"] != broken.name
    }
    assert "loading 8 file(s)" in log and f"loaded {paths[0].name}" not in log

    assert published_content(workdir, decimals=6) == _in_process(tmp_path, paths[0].parent)


def test_a_worker_killed_mid_load_hands_its_load_to_the_other_and_nothing_is_published_half(
    servers, tmp_path, monkeypatch
):
    paths = _history(tmp_path, 2)
    workdir = tmp_path / "killed"
    workdir.mkdir()
    env = _profile(servers, workdir, paths[0].parent, redis_db=2)
    env["RETAIL_SEG_CELERY_REDELIVER_SECONDS"] = REDELIVER_SECONDS
    # The first worker stops in its first load, its files written, just before accepting it; killed there.
    [doomed] = _workers(env, workdir, "doomed", **{PAUSE_VARIABLE: "load accepting"})
    log = workdir / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "retail_seg", "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    survivor = []
    try:
        wait_for(lambda: PAUSED in (workdir / "doomed.log").read_text(), 180, "the doomed worker's pause")
        assert not (workdir / "warehouse.duckdb").exists()  # nothing published yet
        os.killpg(doomed.pid, 9)
        doomed.wait(timeout=30)
        survivor = _workers(env, workdir, "survivor")
        assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, 9)  # the command and the processes it loads with, when it did not end
        for worker in [doomed, *survivor]:
            cluster.stop(worker)
    monkeypatch.setenv(cluster.POSTGRES_URL, env[cluster.POSTGRES_URL])
    loads = _loads(env)
    # No load run was ever marked failed (its owner is the process orchestrating it, alive throughout).
    assert all(load["status"] == dg.DagsterRunStatus.SUCCESS and not load["failed_once"] for load in loads)
    retried = [load for load in loads if load["workers"][0] == "doomed"]
    assert len(retried) == 1, loads
    assert set(retried[0]["workers"][1:]) == {"survivor"}, loads  # taken again by the other worker
    # The retry built a new attempt beside the dead one's files; the attempt in force is a finished one.
    accepted = Lake(workdir / "warehouse.duckdb").accepted()
    in_force = accepted[retried[0]["file"]].load_id
    assert "~" in in_force.split("@")[0]
    # The dead attempt's files are gone with the publication; only the loads in force are left.
    assert sorted(p.name for p in Lake(workdir / "warehouse.duckdb").loads.iterdir()) == sorted(
        record.load_id for record in accepted.values()
    )
    assert published_content(workdir, decimals=6) == _in_process(tmp_path, paths[0].parent)


def test_a_server_that_never_comes_up_is_stopped_not_left_running(tmp_path):
    """A Redis whose port never answers (here: the wait gives up at once) is stopped by its start, with
    everything it started, rather than outliving the test that could not use it."""
    _require_servers()
    started: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def recorded(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    def never(self, port: int, ours, timeout: float = 30.0) -> subprocess.Popen:
        raise TimeoutError(f"{self.what} did not listen on {port}")

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cluster.subprocess, "Popen", recorded)
            patch.setattr(cluster._Started, "listening", never)
            with pytest.raises(TimeoutError, match="redis-server did not listen"):
                cluster.start_redis(tmp_path / "redis", cluster.free_port())
        [process] = started
        assert process.poll() is not None, "the server was left running"
        assert not session_processes(process.pid), "the server left processes of its session running"
    finally:  # when the guarantee breaks, the test does not leave the server running either
        for process in started:
            cluster.stop(process)


def test_a_server_that_exits_at_once_is_reported_at_once_with_its_own_words(tmp_path, monkeypatch):
    """A server that stops before it listens (a port taken, a bad setting) fails its start within a moment,
    not after the 30 s wait, and the error carries the server's last words and where its log is."""
    server = tmp_path / "fake-redis"
    server.write_text("#!/bin/sh\necho 'starting'\necho '# FATAL: the port is taken' >&2\nexit 3\n")
    server.chmod(0o755)
    monkeypatch.setattr(cluster, "_program", lambda name, *elsewhere: str(server))
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "redis.log").write_text("what an earlier run said\n")  # not this run's words
    started = time.monotonic()
    with pytest.raises(cluster.ServerExited) as failure:
        cluster.start_redis(tmp_path / "redis", cluster.free_port())
    assert time.monotonic() - started < 10, "the start waited for a server that had already exited"
    said = str(failure.value)
    assert "redis-server exited with code 3 before it listened on 127.0.0.1:" in said
    assert ": starting / # FATAL: the port is taken (log: " in said
    assert str(tmp_path / "redis" / "redis.log") in said


def test_a_port_another_program_answers_on_is_not_taken_for_the_server(tmp_path):
    """Something else already listens on the port: the Redis started there cannot bind and exits, and its
    start says so with Redis' own words, rather than taking the other program's answer for Redis'."""
    _require_servers()
    returned: list[subprocess.Popen] = []
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        try:
            with pytest.raises(cluster.ServerExited) as failure:
                returned.append(cluster.start_redis(tmp_path / "redis", port))
        finally:  # when the guarantee breaks, the Redis taken for ready is not left running
            for process in returned:
                cluster.stop(process)
    said = str(failure.value)
    assert f"redis-server exited with code 1 before it listened on 127.0.0.1:{port}" in said
    assert "Address already in use" in said


def test_a_profile_that_fails_to_start_leaves_nothing_running(tmp_path, monkeypatch, capsys):
    """`cluster up` whose Postgres stops before it listens says so in one sentence, exits 1, and stops the
    Redis it had already started: no half a profile left running, unowned. What it did not start, listed in
    the same `pids` (another profile's, a previous boot's), it leaves alone."""
    from retail_seg import cli

    _require_servers()
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "pids").write_text(f"worker1 {bystander.pid}\n")
    redis: list[subprocess.Popen] = []
    start_redis = cluster.start_redis

    def recorded(folder: Path, port: int) -> subprocess.Popen:
        redis.append(start_redis(folder, port))
        return redis[-1]

    def exits(folder: Path, port: int) -> subprocess.Popen:
        raise cluster.ServerExited(f"postgres exited with code 1 before it listened on 127.0.0.1:{port}")

    monkeypatch.setattr(cluster, "start_redis", recorded)
    monkeypatch.setattr(cluster, "start_postgres", exits)
    try:
        code = cli.main(["cluster", "up", "--workers", "1", "--folder", str(tmp_path / "cluster")])
        [process] = redis
        assert code == cli.Exit.FAILED
        said = capsys.readouterr().err
        assert "the distributed profile did not start; nothing of it is running: postgres exited" in said
        assert process.poll() is not None, "the Redis that did start was left running"
        assert not session_processes(process.pid)
        assert bystander.poll() is None, "a process this call did not start was stopped"
        assert (tmp_path / "cluster" / "pids").read_text() == f"worker1 {bystander.pid}\n"
    finally:
        for process in [*redis, bystander]:
            cluster.stop(process)
