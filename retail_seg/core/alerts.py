"""Alerts: what went wrong, in words, delivered as JSON to a webhook, a command, or both.

The sensors in `defs/alerting.py` decide when something is worth an alert; this module says what it is
and delivers it. A delivery that fails is described, never raised: a webhook that is down must not stop
the sensor that noticed a failed run. Where an alert went is named by the webhook's host and the command's
program only, since the rest of a webhook URL or a command line often holds a token.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import shlex
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Literal

Kind = Literal["run_failure", "drift", "stale"]
KINDS: tuple[Kind, ...] = ("run_failure", "drift", "stale")
TIMEOUT_SECONDS = 10.0
# What a failed command's output may add to the words that describe the failure.
OUTPUT_CHARACTERS = 300


@dataclass(frozen=True)
class Alert:
    """One thing a person should hear about: its kind, a sentence, the facts behind it and the run."""

    kind: Kind
    summary: str
    details: dict = field(default_factory=dict)
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def to_json(self) -> str:
        """The alert as the JSON object every target receives."""
        return json.dumps({"source": "retail_seg", **asdict(self)}, sort_keys=True, default=str)


@dataclass(frozen=True)
class AlertTargets:
    """Where alerts go: an http(s) webhook, a command, both, or nowhere."""

    webhook: str | None = None
    command: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.webhook or self.command)


@dataclass(frozen=True)
class Delivery:
    """Whether one target received an alert, in words."""

    target: str
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None

    def words(self) -> str:
        return f"sent to {self.target}" if self.delivered else f"not sent to {self.target}: {self.error}"


def run_failure_alert(job: str, run_id: str, message: str, failed_steps: dict[str, str]) -> Alert:
    """A failed run: its job, and each failed step's error (else the run's own failure message)."""
    reasons = "; ".join(f"{step}: {error}" for step, error in failed_steps.items()) or message
    return Alert(
        kind="run_failure",
        summary=f"Run {run_id} of job {job} failed. {reasons}",
        details={"job": job, "failed_steps": failed_steps, "message": message},
        run_id=run_id,
    )


def drift_alert(run_id: str, warnings: dict[str, str]) -> Alert | None:
    """A published run whose segmentation drifted from the previous run's: each warned drift check and its
    words; None when no check warned."""
    if not warnings:
        return None
    return Alert(
        kind="drift",
        summary=f"Run {run_id} published a segmentation that drifted from the previous run "
        f"({len(warnings)} drift check(s) warned): " + "; ".join(warnings.values()),
        details={"warnings": warnings},
        run_id=run_id,
    )


def stale_alert(
    published_run: str, published_at: float, now: float, stale_after_hours: float
) -> Alert | None:
    """The published segmentation when it is older than `stale_after_hours` at `now` (Unix seconds); None
    while it is fresh."""
    age_hours = (now - published_at) / 3600
    if age_hours < stale_after_hours:
        return None
    when = dt.datetime.fromtimestamp(published_at, dt.UTC).isoformat(timespec="minutes")
    return Alert(
        kind="stale",
        summary=f"The published segmentation is {age_hours:.1f} hours old (run {published_run}, published "
        f"{when}); it should be renewed every {stale_after_hours:g} hours: a nightly run was missed, "
        "failed or refused.",
        details={
            "published_run": published_run,
            "published_at": when,
            "age_hours": round(age_hours, 2),
            "stale_after_hours": stale_after_hours,
        },
        run_id=published_run,
    )


def send(
    alert: Alert, webhook: str | None = None, command: str | None = None, timeout: float = TIMEOUT_SECONDS
) -> list[Delivery]:
    """POST the alert's JSON to `webhook` and/or run `command` with it on standard input, each within
    `timeout` seconds; what happened at each target, failures included."""
    body = alert.to_json().encode()
    deliveries = []
    if webhook:
        deliveries.append(_post(webhook, body, timeout))
    if command:
        deliveries.append(_run(command, body, timeout))
    return deliveries


def _post(url: str, body: bytes, timeout: float) -> Delivery:
    parts = urllib.parse.urlsplit(url)
    target = f"webhook {parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Delivery("the webhook", "not an http(s) URL with a host (RETAIL_SEG_ALERT_WEBHOOK)")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        return Delivery(target, f"answered HTTP {error.code} {error.reason}")
    except urllib.error.URLError as error:
        return Delivery(target, f"unreachable ({_reason(error.reason)})")
    except (OSError, http.client.HTTPException) as error:  # a timeout or a connection cut mid-answer
        return Delivery(target, f"failed ({_reason(error)})")
    return Delivery(target)


def _run(command: str, body: bytes, timeout: float) -> Delivery:
    try:
        arguments = shlex.split(command)
    except ValueError as error:
        return Delivery("the command", f"cannot be split into arguments ({error}; RETAIL_SEG_ALERT_COMMAND)")
    if not arguments:
        return Delivery("the command", "is empty (RETAIL_SEG_ALERT_COMMAND)")
    target = f"command {arguments[0]}"
    try:
        finished = subprocess.run(arguments, input=body, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Delivery(target, f"still running after {timeout:g} s; stopped")
    except OSError as error:
        return Delivery(target, f"cannot be started ({_reason(error)})")
    if finished.returncode != 0:
        output = finished.stderr.decode(errors="replace").strip()[-OUTPUT_CHARACTERS:]
        return Delivery(
            target, f"exited with status {finished.returncode}" + (f": {output}" if output else "")
        )
    return Delivery(target)


def _reason(error: object) -> str:
    """An OS or network error in its own words, without the errno prefix."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
