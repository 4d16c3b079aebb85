"""Freshness and alerts: the published segmentation shows stale in the UI after a missed night, and a failed
run, a run whose segmentation drifted and a stale publication are each sent to the configured targets."""

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence

import dagster as dg

from retail_seg.core.alerts import (
    Alert,
    AlertTargets,
    Delivery,
    drift_alert,
    run_failure_alert,
    send,
    stale_alert,
)
from retail_seg.core.drift import DRIFT_CHECKS
from retail_seg.defs.runs import PUBLICATION

# The assets whose freshness the UI shows: what the CRM and the marketers read, and the publication that
# makes it visible. A key not (yet) defined is passed over.
FRESH_ASSETS = ["customer_segments", "segment_profiles", "audiences", "publication"]
SEGMENTS = dg.AssetKey("customer_segments")
NOT_CONFIGURED = (
    "alerts are not configured: set RETAIL_SEG_ALERT_WEBHOOK (an http(s) URL) or RETAIL_SEG_ALERT_COMMAND"
)


def with_freshness(assets: Sequence[dg.AssetsDefinition], hours: float) -> list[dg.AssetsDefinition]:
    """`assets` with a freshness policy of `hours` on each of FRESH_ASSETS: the UI shows one failing when
    its last materialization is older (Dagster's freshness daemon evaluates it, in `dg dev`)."""
    policy = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=hours))
    fresh = {dg.AssetKey(name) for name in FRESH_ASSETS}

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        return dg.apply_freshness_policy(spec, policy) if spec.key in fresh else spec

    return [asset.map_asset_specs(apply) if fresh & set(asset.keys) else asset for asset in assets]


def latest_publication(instance: dg.DagsterInstance) -> tuple[str, float] | None:
    """The run whose publication is the latest, and when it was published (Unix seconds); None before the
    first. Measured by the publication step, so a run refused or failed before it never counts."""
    cursor = None
    while True:
        page = instance.fetch_materializations(PUBLICATION, limit=20, cursor=cursor)
        for record in page.records:
            published = record.asset_materialization.metadata.get("published_run")
            # A run that built nothing materializes the step with no publication of its own.
            if published is not None and published.value == record.run_id:
                return record.run_id, record.timestamp
        if not page.has_more:
            return None
        cursor = page.cursor


def drift_warnings(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """The drift checks that warned in a run, each with its words."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    warned = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        if (
            evaluation.asset_key == SEGMENTS
            and evaluation.check_name in DRIFT_CHECKS
            and not evaluation.passed
        ):
            warned[evaluation.check_name] = evaluation.description or evaluation.check_name
    return warned


def _failed_steps(context: dg.RunFailureSensorContext) -> dict[str, str]:
    """Each failed step and its error: a Failure's description (a gate's words), else the exception's."""
    failed = {}
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        described = data.user_failure_data.description if data.user_failure_data else None
        failed[event.step_key] = described or (
            data.error.message.strip() if data.error else "no error recorded"
        )
    return failed


def _deliver(log: logging.Logger, alert: Alert, targets: AlertTargets) -> tuple[list[Delivery], str]:
    """Send the alert, log each target's outcome (a failure as an error, never raised), and say it all."""
    deliveries = send(alert, webhook=targets.webhook, command=targets.command)
    for delivery in deliveries:
        (log.info if delivery.delivered else log.error)(f"{alert.kind} alert {delivery.words()}")
    return deliveries, f"{alert.kind} alert: " + "; ".join(d.words() for d in deliveries)


def run_failure_alerts(targets: AlertTargets) -> dg.SensorDefinition:
    """A sensor that sends an alert for every failed run of the project's jobs."""

    @dg.run_failure_sensor(
        name="run_failure_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends an alert naming the job, the run and the failed step's error for every failed "
        "run (RETAIL_SEG_ALERT_WEBHOOK, RETAIL_SEG_ALERT_COMMAND).",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
        if not targets.configured:
            return dg.SkipReason(NOT_CONFIGURED)
        run = context.dagster_run
        alert = run_failure_alert(
            run.job_name, run.run_id, context.failure_event.message, _failed_steps(context)
        )
        return dg.SkipReason(_deliver(context.log, alert, targets)[1])

    return run_failure_alert_sensor


def drift_alerts(job, targets: AlertTargets) -> dg.SensorDefinition:
    """A sensor that sends one alert per successful run of `job` whose drift checks warned."""

    @dg.run_status_sensor(
        name="drift_alerts",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"After each successful {job.name} run, sends one alert listing the drift checks that "
        "warned, in words; nothing when none did.",
    )
    def drift_alert_sensor(context: dg.RunStatusSensorContext):
        if not targets.configured:
            return dg.SkipReason(NOT_CONFIGURED)
        run_id = context.dagster_run.run_id
        alert = drift_alert(run_id, drift_warnings(context.instance, run_id))
        if alert is None:
            return dg.SkipReason(f"run {run_id}: no drift check warned")
        return dg.SkipReason(_deliver(context.log, alert, targets)[1])

    return drift_alert_sensor


def stale_segmentation_alerts(
    targets: AlertTargets, stale_after_hours: float, clock: Callable[[], float] = time.time
) -> dg.SensorDefinition:
    """A sensor that sends one alert when the published segmentation gets older than `stale_after_hours`,
    and no more until a newer publication goes stale in turn."""

    @dg.sensor(
        name="stale_segmentation_alerts",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Sends one alert when the last publication is more than {stale_after_hours:g} hours old "
        "(RETAIL_SEG_STALE_AFTER_HOURS): a nightly run was missed, failed or refused.",
    )
    def stale_segmentation_alert_sensor(context: dg.SensorEvaluationContext):
        if not targets.configured:
            return dg.SkipReason(NOT_CONFIGURED)
        latest = latest_publication(context.instance)
        if latest is None:
            return dg.SkipReason("nothing is published yet")
        run_id, published_at = latest
        now = clock()
        alert = stale_alert(run_id, published_at, now, stale_after_hours)
        # The cursor is the one publication already alerted about: it never grows.
        alerted = json.loads(context.cursor)["alerted"] if context.cursor else None
        if alert is None:
            return dg.SkipReason(
                f"the published segmentation (run {run_id}) is {(now - published_at) / 3600:.1f} hours old, "
                f"within {stale_after_hours:g}"
            )
        if alerted == run_id:
            return dg.SkipReason(f"already alerted that the publication of run {run_id} is stale")
        deliveries, words = _deliver(context.log, alert, targets)
        # Nothing delivered: the next tick tries again.
        reached = any(d.delivered for d in deliveries)
        return dg.SensorResult(
            cursor=json.dumps({"alerted": run_id if reached else alerted}), skip_reason=words
        )

    return stale_segmentation_alert_sensor


def alerting_sensors(job, targets: AlertTargets, stale_after_hours: float) -> list[dg.SensorDefinition]:
    """The three alert sensors: failed runs, drift after a run of `job`, and a stale publication."""
    return [
        run_failure_alerts(targets),
        drift_alerts(job, targets),
        stale_segmentation_alerts(targets, stale_after_hours),
    ]
