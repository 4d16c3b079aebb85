"""Resources: where the pipeline reads its source and writes its warehouse and reports."""

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from retail_seg import settings
from retail_seg.core.synthetic import write_synthetic


class SourceFile(dg.ConfigurableResource):
    """The transactions export to segment: a file, a folder of exports or a glob (CSV, Parquet, Excel)."""

    path: str = Field(
        default=settings.SOURCE.default,
        description="A file, a folder (every export in it) or a glob; the format is recognised from the "
        "header. The default is the embedded synthetic data, generated on first use.",
    )

    def resolve(self) -> Path:
        """The source's path; the embedded default data is generated here when it is not there yet."""
        path = Path(self.path).expanduser().resolve()
        if path == settings.DEFAULT_SOURCE and not path.exists():
            _log(f"generating the default data at {path} (python -m retail_seg synthesize)")
            write_synthetic(path.parent)
        return path


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, with a memory ceiling: past it DuckDB spills to disk instead of growing."""

    memory_limit: str = Field(
        default=settings.MEMORY_LIMIT.default,
        description="DuckDB's memory limit, e.g. '2GB' or '8GB'; past it DuckDB spills to disk.",
    )

    @contextmanager
    def get_connection(self):
        """The warehouse, held alone for as long as the connection is open, and closed however the block
        ends (an asset that refuses raises inside it)."""
        config = {"custom_user_agent": "dagster", **self.connection_config}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        with _held_alone(self.database):
            conn = duckdb.connect(self.database, config=config)
            try:
                yield conn
            finally:
                conn.close()


HELD = "warehouse held"
RELEASED = "warehouse released"


@contextmanager
def _held_alone(database: str):
    """Hold the warehouse alone: an exclusive lock on a file beside it, waited for, never failed on.

    DuckDB lets one process open the file. The run queue orders the runs it launches, but runs started
    outside it (two `python -m retail_seg run`s) would race for the file; this lock is what makes them
    take turns, and a step that waits says so in its log. (A Dagster concurrency pool would do it
    per step too, but its SQLite storage can hand one slot to two claims made at the same instant.)
    """
    if database in ("", ":memory:"):
        yield
        return
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        start = time.monotonic()
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            _log(f"{HELD} (waited {time.monotonic() - start:.1f} s)")
            yield
        finally:
            _log(RELEASED)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(message: str) -> None:
    """Into the running step's log, where there is one."""
    try:
        context = dg.OpExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return
    context.log.info(message)


class LandingFolder(dg.ConfigurableResource):
    """Folder the sensor watches for new exports."""

    path: str = Field(
        default=settings.INCOMING.default,
        description="Drop an export here and the landing-folder sensor starts a run on it.",
    )

    def resolve(self) -> Path:
        return Path(self.path).expanduser().resolve()


class ReportsFolder(dg.ConfigurableResource):
    """Folder that receives the figures and the HTML report."""

    path: str = Field(default=settings.REPORTS.default, description="Where index.html and its figures go.")

    def prepare(self) -> Path:
        folder = Path(self.path).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _configured(setting: settings.Setting) -> str | dg.EnvVar:
    """The environment variable when it is set, read when a run starts (the UI shows it by name); else the
    project's default."""
    return dg.EnvVar(setting.variable) if setting.value() != setting.default else setting.default


def production_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources, from the environment where it says otherwise and from the project's defaults else.

    Called when Dagster loads the definitions, never at import time.
    """
    return {
        "source": SourceFile(path=_configured(settings.SOURCE)),
        "warehouse": Warehouse(
            database=_configured(settings.WAREHOUSE), memory_limit=_configured(settings.MEMORY_LIMIT)
        ),
        "reports": ReportsFolder(path=_configured(settings.REPORTS)),
        "landing": LandingFolder(path=_configured(settings.INCOMING)),
    }
