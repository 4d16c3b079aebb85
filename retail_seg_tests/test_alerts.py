"""Alerts reach a real webhook and a real command; freshness shows a missed night as stale."""

import asyncio
import http.server
import json
import shlex
import sys
import threading
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from retail_seg import settings
from retail_seg.core.alerts import Alert, AlertTargets, send
from retail_seg.core.drift import DRIFT_CHECKS
from retail_seg.core.synthetic import write_synthetic
from retail_seg.definitions import ASSETS, build_definitions, segmentation_job
from retail_seg.defs.alerting import (
    FRESH_ASSETS,
    NOT_CONFIGURED,
    drift_alerts,
    latest_publication,
    run_failure_alerts,
    stale_segmentation_alerts,
)
from retail_seg_tests.pipeline import query, resources
from retail_seg_tests.servers import free_port

HOUR = 3600.0


@pytest.fixture
def webhook():
    """A webhook on loopback that keeps every JSON body POSTed to it, with its content type."""
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/retail-seg?token=secret", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def command(tmp_path):
    """A command that appends the alert it reads on standard input to a file, and a reader of that file."""
    script = tmp_path / "record_alert.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')\n")
    out = tmp_path / "alerts.jsonl"

    def received() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    return shlex.join([sys.executable, str(script), str(out)]), received


@pytest.fixture
def targets(webhook, command):
    return AlertTargets(webhook=webhook[0], command=command[0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the segmentation job in one instance, the second with another k so that it drifts, then a
    run in another warehouse on a file without the columns it needs, which fails."""
    workdir = tmp_path_factory.mktemp("runs")
    source, _ = write_synthetic(workdir / "source", customers=150, seed=31)
    broken = workdir / "broken" / "transactions.csv"
    broken.parent.mkdir()
    broken.write_text("invoice_no,quantity\n1,2\n")

    def job(on, warehouse):
        definitions = dg.Definitions(
            assets=ASSETS, jobs=[segmentation_job], resources=resources(on, warehouse)
        )
        return definitions.resolve_job_def(segmentation_job.name)

    with dg.instance_for_test() as instance:
        first, second = (
            job(source, workdir).execute_in_process(
                instance=instance, run_config={"ops": {"segmentation": {"config": {"k_min": k, "k_max": k}}}}
            )
            for k in (3, 5)
        )
        failed = job(broken, workdir / "empty").execute_in_process(instance=instance, raise_on_error=False)
        assert first.success and second.success and not failed.success
        yield instance, first, second, failed, workdir


def _failure_context(instance, result):
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()


def _success_context(instance, result):
    return dg.build_run_status_sensor_context(
        sensor_name="drift_alerts",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )


def test_an_alert_arrives_as_json_at_the_webhook_and_on_the_commands_stdin(webhook, command):
    alert = Alert("drift", "Run r1 drifted", {"warnings": {"k_and_method": "k went from 3 to 5"}}, "r1")
    deliveries = send(alert, webhook=webhook[0], command=command[0])
    assert [d.delivered for d in deliveries] == [True, True]
    [(content_type, posted)] = webhook[1]
    assert content_type == "application/json"
    assert command[1]() == [posted]
    assert posted == {
        "source": "retail_seg",
        "kind": "drift",
        "summary": "Run r1 drifted",
        "details": {"warnings": {"k_and_method": "k went from 3 to 5"}},
        "run_id": "r1",
    }
    # Where it went is named without the URL's path and query, which may hold a token.
    assert all("secret" not in d.words() and "/hooks" not in d.words() for d in deliveries)


def test_a_target_that_fails_is_described_never_raised(tmp_path):
    alert = Alert("stale", "old", run_id="r1")
    port = free_port()
    [down] = send(alert, webhook=f"http://127.0.0.1:{port}/hook")
    assert not down.delivered and down.words() == (
        f"not sent to webhook http://127.0.0.1:{port}: unreachable (Connection refused)"
    )
    [refusing] = send(alert, command=shlex.join([sys.executable, "-c", "import sys; sys.exit('no room')"]))
    assert refusing.error == "exited with status 1: no room"
    [missing] = send(alert, command=str(tmp_path / "no-such-program"))
    assert missing.error.startswith("cannot be started (No such file or directory")
    [hanging] = send(
        alert, command=shlex.join([sys.executable, "-c", "import time; time.sleep(30)"]), timeout=0.5
    )
    assert hanging.error == "still running after 0.5 s; stopped"
    [not_http] = send(alert, webhook="file:///etc/passwd")
    assert not not_http.delivered and "not an http(s) URL" in not_http.error
    with pytest.raises(ValueError, match="alert kind 'oops' is not one of run_failure, drift, stale"):
        Alert("oops", "words")


def test_a_failed_run_alerts_with_its_job_its_id_and_the_failed_steps_error(runs, webhook, targets, command):
    instance, _, _, failed, _ = runs
    said = run_failure_alerts(targets)(_failure_context(instance, failed))
    assert isinstance(said, dg.SkipReason)
    assert said.skip_message.startswith("run_failure alert: sent to webhook http://127.0.0.1:")
    [(_, alert)] = webhook[1]
    assert command[1]() == [alert]  # the same alert, on the command's standard input
    assert alert["kind"] == "run_failure" and alert["run_id"] == failed.run_id
    assert alert["details"]["job"] == "segment_customers"
    gate = (
        "features gate failed on marts.customer_features: at least 3 customers with a purchase, enough for "
        "two clusters (observed: 0 customers)"
    )
    assert alert["details"]["failed_steps"] == {"customer_features": gate}
    assert (
        alert["summary"] == f"Run {failed.run_id} of job segment_customers failed. customer_features: {gate}"
    )


def test_a_drifted_run_sends_one_alert_with_the_words_of_every_check_that_warned(runs, webhook, targets):
    instance, first, second, _, workdir = runs
    quiet = drift_alerts(segmentation_job, targets)(_success_context(instance, first))
    assert quiet.skip_message == f"run {first.run_id}: no drift check warned" and webhook[1] == []
    # What the published warehouse says of the second run's drift.
    warned = dict(query(workdir, 'SELECT "check", words FROM marts.segment_drift WHERE NOT passed'))
    assert "k_and_method" in warned and set(warned) <= set(DRIFT_CHECKS)  # k went from 3 to 5
    drift_alerts(segmentation_job, targets)(_success_context(instance, second))
    [(_, alert)] = webhook[1]
    assert alert["kind"] == "drift" and alert["run_id"] == second.run_id
    assert alert["details"]["warnings"] == warned
    assert all(words in alert["summary"] for words in warned.values())


def _tick(sensor, instance, cursor=None):
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    return result.skip_message, result.cursor


def test_a_stale_publication_alerts_once_and_a_fresh_one_not_at_all(runs, webhook, command, targets):
    instance, first, second, failed, _ = runs
    # The failed run published nothing: the publication is still the second run's.
    published_run, published_at = latest_publication(instance)
    assert published_run == second.run_id and failed.run_id != published_run

    fresh = stale_segmentation_alerts(targets, 26, clock=lambda: published_at + 25 * HOUR)
    said, _ = _tick(fresh, instance)
    assert said == f"the published segmentation (run {second.run_id}) is 25.0 hours old, within 26"

    stale = stale_segmentation_alerts(targets, 26, clock=lambda: published_at + 27 * HOUR)
    # Alerted about the previous publication already: this one is another, and is alerted about once.
    said, cursor = _tick(stale, instance, json.dumps({"alerted": first.run_id}))
    assert said.startswith("stale alert: sent to webhook") and webhook[1][0][1]["run_id"] == second.run_id
    assert webhook[1][0][1]["summary"].startswith("The published segmentation is 27.0 hours old")
    said, cursor = _tick(stale, instance, cursor)
    assert said == f"already alerted that the publication of run {second.run_id} is stale"
    assert len(webhook[1]) == 1 and json.loads(cursor) == {"alerted": second.run_id}  # one id, never more
    assert [alert["kind"] for alert in command[1]()] == ["stale"]


def test_a_stale_alert_nobody_received_is_tried_again_next_tick(runs):
    instance = runs[0]
    published_at = latest_publication(instance)[1]
    down = AlertTargets(webhook=f"http://127.0.0.1:{free_port()}/hook")
    stale = stale_segmentation_alerts(down, 26, clock=lambda: published_at + 30 * HOUR)
    said, cursor = _tick(stale, instance)
    assert said.startswith("stale alert: not sent to webhook") and "unreachable" in said
    said, _ = _tick(stale, instance, cursor)
    assert said.startswith("stale alert: not sent to webhook")  # tried again, and did not raise


def test_a_run_failure_alert_to_a_webhook_that_is_down_is_logged_and_the_sensor_goes_on(runs, capfd):
    instance, _, _, failed, _ = runs
    port = free_port()
    sensor = run_failure_alerts(AlertTargets(webhook=f"http://127.0.0.1:{port}/hook"))
    said = sensor(_failure_context(instance, failed))
    assert said.skip_message == (
        f"run_failure alert: not sent to webhook http://127.0.0.1:{port}: unreachable (Connection refused)"
    )
    logged = [line for line in capfd.readouterr().err.splitlines() if "not sent to webhook" in line]
    assert logged and "ERROR" in logged[0]  # in the tick's log, as an error


def test_without_a_target_every_alert_sensor_says_alerts_are_not_configured(runs):
    instance, first, _, failed, _ = runs
    nowhere = AlertTargets()
    assert run_failure_alerts(nowhere)(_failure_context(instance, failed)).skip_message == NOT_CONFIGURED
    assert drift_alerts(segmentation_job, nowhere)(_success_context(instance, first)).skip_message == (
        NOT_CONFIGURED
    )
    assert _tick(stale_segmentation_alerts(nowhere, 26), instance)[0] == NOT_CONFIGURED


def _materialized(instance: dg.DagsterInstance, asset: str, hours_ago: float) -> None:
    """A materialization of `asset` recorded `hours_ago` hours ago."""
    instance.report_dagster_event(
        DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=RUNLESS_JOB_NAME,
            event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset)),
        ),
        run_id=RUNLESS_RUN_ID,
        timestamp=time.time() - hours_ago * HOUR,
    )


def test_the_ui_shows_the_published_segmentation_stale_26_hours_after_it_was_published(monkeypatch):
    """Dagster's own freshness daemon, as `dg dev` runs it, over the project's definitions."""
    monkeypatch.delenv(settings.STALE_AFTER_HOURS.variable, raising=False)
    with dg.instance_for_test() as instance:
        _materialized(instance, "publication", hours_ago=27)  # last night's run did not publish
        _materialized(instance, "customer_segments", hours_ago=25)
        origin = LoadableTargetOrigin(module_name="retail_seg.definitions", attribute="defs")
        target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin))
        keys = [dg.AssetKey(name) for name in ("publication", "customer_segments", "segment_profiles")]

        def states() -> dict[str, str]:
            asyncio.run(FreshnessDaemon()._evaluate_assets(workspace))
            records = instance.get_freshness_state_records(keys)
            return {key.to_user_string(): record.freshness_state.value for key, record in records.items()}

        with WorkspaceProcessContext(instance, target) as workspace:
            assert states() == {
                "publication": "FAIL",
                "customer_segments": "PASS",
                "segment_profiles": "UNKNOWN",
            }
            _materialized(instance, "publication", hours_ago=0)  # tonight's run published
            assert states()["publication"] == "PASS"


def test_freshness_applies_to_the_fresh_assets_that_exist_and_the_window_is_a_setting(monkeypatch):
    graph = build_definitions(stale_after_hours=3).resolve_asset_graph()
    fresh = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).freshness_policy}
    assert fresh == set(FRESH_ASSETS) & {k.to_user_string() for k in graph.get_all_asset_keys()}
    policy = graph.get(dg.AssetKey("publication")).freshness_policy
    assert policy.fail_window.to_timedelta().total_seconds() == 3 * HOUR
    monkeypatch.setenv(settings.STALE_AFTER_HOURS.variable, "soon")
    with pytest.raises(ValueError, match="RETAIL_SEG_STALE_AFTER_HOURS: 'soon' is not a number of hours"):
        settings.stale_after_hours()
    monkeypatch.setenv(settings.STALE_AFTER_HOURS.variable, "0.5")
    assert settings.stale_after_hours() == 0.5
    monkeypatch.setenv(settings.ALERT_WEBHOOK.variable, "https://hooks.example.com/T1")
    monkeypatch.setenv(settings.ALERT_COMMAND.variable, "none")
    assert settings.alert_targets() == AlertTargets(webhook="https://hooks.example.com/T1", command=None)
    sensors = {s.name for s in build_definitions().sensors}
    assert {"run_failure_alerts", "drift_alerts", "stale_segmentation_alerts"} <= sensors
