"""The UI, for real: `dg dev` (what `make ui` runs) serves, a run launched through its GraphQL API
materializes every asset and records every gate, the asset graph renders in a browser, and the server
stops cleanly."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.pipeline import ALL_ASSETS
from retail_seg_tests.runs import kill_group, run_status, start_run, started_step, wait_for
from retail_seg_tests.servers import REPO, VENV_BIN, free_port, project_environment, session_processes

GATES = {
    ("raw_transactions", "raw_gate"),
    ("clean_transactions", "staging_gate"),
    ("customer_features", "features_gate"),
    ("customer_value", "value_gate"),
    ("customer_segments", "segments_gate"),
}
CHROMIUM = shutil.which("chromium")
RUN_STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
CHECKS = """query Checks($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { assetChecksOrError { ... on AssetChecks {
    checks { name blocking executionForLatestMaterialization { runId status } } } } } }
}"""


class Server:
    def __init__(self, workdir: Path):
        source, _ = write_synthetic(workdir / "source", customers=300, seed=6)
        self.port = free_port()
        self.log = (workdir / "dagster_dev.log").open("w")
        # What `make ui` runs: dg dev inside the project's environment, on loopback.
        env = {**project_environment(workdir, source), "VIRTUAL_ENV": str(VENV_BIN.parent)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
        self.env, self.workdir, self.source = env, workdir, source
        self.process = subprocess.Popen(
            [str(VENV_BIN / "dg"), "dev", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session, so anything it leaves behind can be found
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{error}: {error.read().decode()[:500]}") from error
        assert "errors" not in answer, answer
        return answer["data"]

    def wait_until_serving(self, timeout: float = 240) -> None:
        """Until the webserver answers and has loaded the code location: on a busy machine it answers
        well before the location's repository is listed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "dagster dev exited early"
            try:
                found = self.graphql(
                    "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
                )
                if found["repositoriesOrError"].get("nodes"):
                    return
            except (OSError, AssertionError):  # not listening yet, or answering with an error
                pass
            time.sleep(1)
        raise TimeoutError(f"dagster dev did not serve the code location on {self.url} within {timeout} s")

    def stop(self) -> list[int]:
        """SIGINT, as a person pressing Ctrl-C would; return whatever is still alive afterwards."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        finally:
            # A code server whose parent went away stops at its heartbeat timeout (45 s) at the latest.
            deadline = time.monotonic() + 60
            while session_processes(self.process.pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            leftovers = [_command_line(pid) for pid in session_processes(self.process.pid)]
            if leftovers:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.log.close()
        return leftovers


def _command_line(pid: int) -> str:
    try:
        return (
            f"{pid}: "
            + (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        )
    except OSError:
        return f"{pid}: (gone)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ui")
    running = Server(workdir)
    try:
        running.wait_until_serving()
        yield running
    finally:
        leftovers = running.stop()
        assert leftovers == [], f"processes left behind after SIGINT: {leftovers}"


def launch(server: Server, timeout: float = 240) -> str:
    """Launch the job through the GraphQL API, as the UI's button does; return its id once it succeeded."""
    location = server.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
    )
    [repository] = location["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == "retail_seg"  # the one code-location name, as pyproject says
    launch = server.graphql(
        """mutation Launch($params: ExecutionParams!) {
             launchRun(executionParams: $params) {
               __typename
               ... on LaunchRunSuccess { run { runId } }
               ... on PythonError { message }
             }
           }""",
        {
            "params": {
                "selector": {
                    "repositoryLocationName": repository["location"]["name"],
                    "repositoryName": repository["name"],
                    "jobName": "segment_customers",
                },
                "runConfigData": {},
            }
        },
    )["launchRun"]
    assert launch["__typename"] == "LaunchRunSuccess", launch
    run_id = launch["run"]["runId"]
    deadline = time.monotonic() + timeout
    status = "QUEUED"
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(2)
        status = server.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
    assert status == "SUCCESS", f"run {run_id} is {status} after {timeout} s"
    return run_id


@pytest.fixture(scope="module")
def launched(server):
    return launch(server)


def test_a_run_launched_from_the_ui_materializes_every_asset(server, launched):
    nodes = server.graphql("{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }")
    latest = {
        "/".join(n["assetKey"]["path"]): [m["runId"] for m in n["assetMaterializations"]]
        for n in nodes["assetNodes"]
    }
    assert set(latest) == ALL_ASSETS
    assert all(runs == [launched] for runs in latest.values())


def test_every_gate_is_recorded_as_a_passed_blocking_check(server, launched):
    found = set()
    for asset, check in GATES:
        data = server.graphql(CHECKS, {"key": {"path": [asset]}})
        [entry] = [c for c in data["assetNodeOrError"]["assetChecksOrError"]["checks"] if c["name"] == check]
        assert entry["blocking"]
        assert entry["executionForLatestMaterialization"] == {"runId": launched, "status": "SUCCEEDED"}
        found.add((asset, entry["name"]))
    assert found == GATES


def test_a_dead_command_line_run_never_blocks_the_queue(server, launched, tmp_path):
    """kill -9 of a CLI run leaves it STARTED in the instance: the daemon's dead_runs sensor releases it,
    and the next run from the UI, queued behind it, succeeds unaided."""
    process = start_run(server.env, server.source, tmp_path / "cli.log")
    home = server.workdir / "dagster_home"
    try:
        dead = wait_for(
            lambda: started_step(home, "customer_features", [launched]), 120, "the CLI run's features"
        )
    finally:
        kill_group(process)  # also when the wait fails: a run left going would hold the warehouse
    start = time.monotonic()
    after = launch(server, timeout=180)
    assert run_status(home, dead).value == "FAILURE"
    assert after != dead and time.monotonic() - start < 180


# Last in the file: starting Chromium can starve the webserver's code servers on a busy machine, and the
# tests above must not depend on their surviving it.
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_the_asset_graph_renders_in_a_browser(server, launched, tmp_path):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1600,1000",
        "--virtual-time-budget=20000",
    ]
    page = f"{server.url}/asset-groups"
    screenshot = tmp_path / "asset_graph.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={screenshot}", page], timeout=300, capture_output=True)
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page], timeout=300, capture_output=True, text=True
    ).stdout
    assert "Global asset lineage" in dom
    for group in ("raw", "staging", "marts", "reports", "audit"):
        assert f">{group}<" in dom
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
