"""The project's settings: each an environment variable with a default under the checkout's `data/` folder.

The defaults live here, not in the Makefile, so `make`, `dg dev`, the plain `dagster` CLI and
`python -m retail_seg` all run the same pipeline on a fresh clone; an environment variable that is set
and not empty always wins. Nothing here imports dagster.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from retail_seg.core.alerts import AlertTargets

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJECT_ROOT / "data"
DEFAULT_SOURCE = DATA / "synthetic" / "transactions.csv"
INSTANCE_SETTINGS = PROJECT_ROOT / "retail_seg" / "dagster.yaml"
DISTRIBUTED_INSTANCE_SETTINGS = PROJECT_ROOT / "retail_seg" / "dagster.distributed.yaml"


@dataclass(frozen=True)
class Setting:
    """An environment variable the pipeline reads, its default and what it means."""

    variable: str
    default: str
    description: str

    def value(self) -> str:
        """The variable when it is set and not empty, else the default."""
        return os.environ.get(self.variable) or self.default


SOURCE = Setting(
    "RETAIL_SEG_SOURCE", str(DEFAULT_SOURCE), "the export(s) to segment: a file, a folder or a glob"
)
WAREHOUSE = Setting("RETAIL_SEG_WAREHOUSE", str(DATA / "warehouse.duckdb"), "the DuckDB warehouse file")
REPORTS = Setting("RETAIL_SEG_REPORTS", str(DATA / "reports"), "figures and `index.html`")
EXPORTS = Setting(
    "RETAIL_SEG_EXPORTS",
    str(DATA / "exports"),
    "the CRM exports (segments, audiences, manifests); unset: `exports/` beside the warehouse file",
)
INCOMING = Setting("RETAIL_SEG_INCOMING", str(DATA / "incoming"), "the landing folder the sensor watches")
MEMORY_LIMIT = Setting(
    "RETAIL_SEG_MEMORY_LIMIT", "2GB", "DuckDB's memory ceiling; past it DuckDB spills to disk"
)
TIMEZONE = Setting("RETAIL_SEG_TIMEZONE", "UTC", "timezone of the 02:00 nightly schedule")
DAGSTER_HOME = Setting(
    "DAGSTER_HOME",
    str(DATA / ".dagster"),
    "Dagster's run and event storage, for `make` and `python -m retail_seg`",
)
MAPPINGS = Setting(
    "RETAIL_SEG_MAPPINGS",
    str(DATA / "mappings"),
    "your own export mappings (`*.toml`), besides the built-in ones",
)
ID_KEY = Setting(
    "RETAIL_SEG_ID_KEY",
    str(DATA / ".id_key"),
    "the secret that hashes personal customer keys (emails): the key, or a file holding it (made if missing)",
)
# An alert target set to this (the default) is off.
NONE = "none"
ALERT_WEBHOOK = Setting(
    "RETAIL_SEG_ALERT_WEBHOOK",
    NONE,
    "an http(s) URL each alert (failed run, drift, stale segmentation) is POSTed to as JSON",
)
ALERT_COMMAND = Setting(
    "RETAIL_SEG_ALERT_COMMAND",
    NONE,
    "a command run with each alert's JSON on its standard input (split like a shell line, run without one)",
)
STALE_AFTER_HOURS = Setting(
    "RETAIL_SEG_STALE_AFTER_HOURS",
    "26",
    "hours after the last publication when the published segmentation shows stale and raises an alert",
)
EXECUTOR = Setting(
    "RETAIL_SEG_EXECUTOR",
    "in_process",
    "where loads run: `in_process` (in the run's process) or `celery` (each file a step on Celery workers)",
)
CELERY_BROKER = Setting(
    "RETAIL_SEG_CELERY_BROKER", "redis://127.0.0.1:6379/0", "the Celery broker, with `celery` as executor"
)
CELERY_BACKEND = Setting(
    "RETAIL_SEG_CELERY_BACKEND",
    "redis://127.0.0.1:6379/1",
    "where Celery workers leave step results, with `celery` as executor",
)
CELERY_REDELIVER_SECONDS = Setting(
    "RETAIL_SEG_CELERY_REDELIVER_SECONDS",
    "3600",
    "after this many seconds a load whose worker died goes to another worker: longer than the longest load",
)
POSTGRES_URL = Setting(
    "RETAIL_SEG_POSTGRES_URL",
    NONE,
    "the Postgres that keeps Dagster's instance (`postgresql+psycopg2://user@host:port/db`), shared by every "
    "process and host; set, a new DAGSTER_HOME gets the distributed instance settings",
)
PARALLEL_LOADS = Setting(
    "RETAIL_SEG_PARALLEL_LOADS",
    "4",
    "with `celery` as executor, how many files `python -m retail_seg run` loads at once, each as its own run",
)
SETTINGS = (
    SOURCE,
    WAREHOUSE,
    REPORTS,
    EXPORTS,
    DAGSTER_HOME,
    INCOMING,
    TIMEZONE,
    MEMORY_LIMIT,
    MAPPINGS,
    ID_KEY,
    ALERT_WEBHOOK,
    ALERT_COMMAND,
    STALE_AFTER_HOURS,
    EXECUTOR,
    CELERY_BROKER,
    CELERY_BACKEND,
    CELERY_REDELIVER_SECONDS,
    POSTGRES_URL,
    PARALLEL_LOADS,
)


def id_key() -> str:
    """The secret that hashes personal customer keys: RETAIL_SEG_ID_KEY itself, or the file it names
    (by default `data/.id_key`, made with a random key on first use and readable by its owner only)."""
    value = ID_KEY.value()
    path = Path(value)
    if value != ID_KEY.default and not path.is_file():
        return value
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: of two first runs at once, one key wins and both use
        # it, and no reader sees a key half written.
        descriptor, aside = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.")
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
    return path.read_text().strip()


def instance_settings() -> Path:
    """The instance settings a new DAGSTER_HOME gets: on Postgres when RETAIL_SEG_POSTGRES_URL is set."""
    return INSTANCE_SETTINGS if POSTGRES_URL.value() == NONE else DISTRIBUTED_INSTANCE_SETTINGS


def exports_folder() -> Path:
    """RETAIL_SEG_EXPORTS when it is set, else `exports/` beside the warehouse file, wherever that is."""
    return Path(os.environ.get(EXPORTS.variable) or Path(WAREHOUSE.value()).parent / "exports")


def alert_targets() -> AlertTargets:
    """Where alerts go: the webhook and the command, each unless set to `none`."""
    webhook, command = ALERT_WEBHOOK.value(), ALERT_COMMAND.value()
    return AlertTargets(
        webhook=None if webhook.lower() == NONE else webhook,
        command=None if command.lower() == NONE else command,
    )


def stale_after_hours() -> float:
    """RETAIL_SEG_STALE_AFTER_HOURS as a number of hours, at least a minute (Dagster's smallest window)."""
    value = STALE_AFTER_HOURS.value()
    try:
        hours = float(value)
    except ValueError:
        hours = 0.0
    if not hours * 60 >= 1:  # also refuses nan
        raise ValueError(
            f"{STALE_AFTER_HOURS.variable}: {value!r} is not a number of hours of at least one minute "
            "(e.g. 26 or 0.5)"
        )
    return hours
