"""Resources: where the pipeline reads its source and writes its warehouse and reports."""

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field


class SourceFile(dg.ConfigurableResource):
    """The transactions export to segment (CSV or Parquet; the format is recognised from the header)."""

    path: str

    def resolve(self) -> Path:
        return Path(self.path).expanduser().resolve()


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, with a memory ceiling: past it DuckDB spills to disk instead of growing."""

    memory_limit: str = Field(default="", description="e.g. '4GB'; empty means DuckDB's default (80% of RAM)")

    @contextmanager
    def get_connection(self):
        config = dict(self.connection_config)
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        duckdb_resource = DuckDBResource(database=self.database, connection_config=config)
        with _held_alone(self.database), duckdb_resource.get_connection() as conn:
            yield conn


HELD = "warehouse held"
RELEASED = "warehouse released"


@contextmanager
def _held_alone(database: str):
    """Hold the warehouse alone: an exclusive lock on a file beside it, waited for, never failed on.

    DuckDB lets one process open the file. The `warehouse` pool orders steps, but Dagster's SQLite
    storage can hand its one slot to two runs that claim it at the same instant; this lock is what
    makes them take turns, and a step that waits says so in its log.
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


# DuckDB lets one process hold the warehouse file: every step that opens it shares this pool, whose
# limit is 1 in the instance's dagster.yaml, so concurrent runs queue their steps; the file lock in
# `Warehouse.get_connection` makes them take turns even when two claims race.
WAREHOUSE_POOL = "warehouse"


class LandingFolder(dg.ConfigurableResource):
    """Folder the sensor watches for new exports."""

    path: str

    def resolve(self) -> Path:
        return Path(self.path).expanduser().resolve()


class ReportsFolder(dg.ConfigurableResource):
    """Folder that receives the figures and the HTML report."""

    path: str

    def prepare(self) -> Path:
        folder = Path(self.path).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def production_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources configured from the environment when a run starts, never at import time."""
    return {
        "source": SourceFile(path=dg.EnvVar("RETAIL_SEG_SOURCE")),
        "warehouse": Warehouse(
            database=dg.EnvVar("RETAIL_SEG_WAREHOUSE"), memory_limit=dg.EnvVar("RETAIL_SEG_MEMORY_LIMIT")
        ),
        "reports": ReportsFolder(path=dg.EnvVar("RETAIL_SEG_REPORTS")),
        "landing": LandingFolder(path=dg.EnvVar("RETAIL_SEG_INCOMING")),
    }
