"""Resources: where the pipeline reads its source and writes its warehouse and report."""

import datetime as dt
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from retail_seg import settings
from retail_seg.core.lake import Lake
from retail_seg.core.landing import is_regular_file_in
from retail_seg.core.loads import LoadRules as LoadLimits
from retail_seg.core.mappings import (
    CustomerMapping,
    Mapping,
    SourceFormatError,
    load_customer_mappings,
    load_mappings,
)
from retail_seg.core.publication import HeldLock, Owner, Publications, Published, Workspace
from retail_seg.core.sources import source_paths
from retail_seg.core.synthetic import write_synthetic
from retail_seg.defs.runs import LOADS, PUBLICATION, release_dead_runs

HELD = "warehouse held"
RELEASED = "warehouse released"


class SourceFile(dg.ConfigurableResource):
    """The transactions export to segment: a file, a folder of exports or a glob (CSV, Parquet, Excel)."""

    path: str = Field(
        default=settings.SOURCE.default,
        description="A file, a folder (every export in it) or a glob; the format is recognised from the "
        "header. The default is the embedded synthetic data, generated on first use.",
    )
    mappings: str = Field(
        default=settings.MAPPINGS.default,
        description="A folder of your own export mappings (*.toml), tried before the built-in ones.",
    )

    def known_mappings(self) -> tuple[Mapping, ...]:
        """Your mappings, then the built-in ones."""
        return load_mappings(Path(self.mappings).expanduser())

    def known_tables(self) -> tuple[CustomerMapping, ...]:
        """The mappings of customer tables (one row per customer), the user's first."""
        return load_customer_mappings(Path(self.mappings).expanduser())

    def id_key(self) -> str:
        """The secret that hashes personal customer keys."""
        return settings.id_key()

    def files(self) -> list[Path]:
        """The files the source names (a file, a folder's exports, a glob's matches), each then loaded or
        refused on its own."""
        return source_paths(self.resolve())

    def resolve(self) -> Path:
        """The source's path; the embedded default data is generated here when it is not there yet."""
        path = Path(self.path).expanduser().resolve()
        if path == settings.DEFAULT_SOURCE and not path.exists():
            _log(f"generating the default data at {path} (python -m retail_seg synthesize)")
            write_synthetic(path.parent)
        return path


class Warehouse(DuckDBResource):
    """The DuckDB warehouse and the report folder, published together at the end of each run.

    Within a run every step works on the run's own copy (`core/publication.py`): the first step to open
    the warehouse takes its lock (waiting for a run that holds it, and saying who) and copies the current
    publication; the `publication` asset swaps the copy in at the end. Outside a run (tests, the
    benchmark) a connection opens the current warehouse itself, under the same lock.
    """

    reports: str = Field(
        default=settings.REPORTS.default,
        description="Where the published report folder (index.html and its figures) appears: a link to "
        "the current publication's.",
    )
    exports: str = Field(
        default="",
        description="Where the published CRM exports (segments, audiences, manifests) appear: a link to the "
        "current publication's; empty means a folder `exports` beside the warehouse file.",
    )
    memory_limit: str = Field(
        default=settings.MEMORY_LIMIT.default,
        description="DuckDB's memory limit, e.g. '2GB' or '8GB'; past it DuckDB spills to disk.",
    )

    def publications(self) -> Publications:
        return Publications(
            Path(self.database), Path(self.reports), Path(self.exports) if self.exports else None
        )

    def lake(self) -> Lake:
        """The history's accepted loads, beside the warehouse."""
        return Lake(Path(self.database))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """At the start of a run: refuse a selection that could not publish, record the process the run
        executes in (so that if it dies the next run can tell), and release runs whose process died."""
        run, instance = context.run, context.instance
        if run is None or instance is None:
            return
        # A run of loads only writes its files into the lake, never the warehouse: nothing to publish.
        loads_only = bool(run.asset_selection) and run.asset_selection <= LOADS
        if run.asset_selection and PUBLICATION not in run.asset_selection and not loads_only:
            raise dg.Failure(
                description="this run's selection leaves out `publication`: a run makes what it built "
                "visible at its end, all together, so select `publication` too (or Materialize all)"
            )
        if not in_worker_task():  # a worker executes one step; the run is owned by who orchestrates it
            instance.add_run_tags(run.run_id, Owner.this_process(run.run_id).as_tags())
        release_dead_runs(instance, context.log.info if context.log else print)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """At the end of a run that did not publish (a gate refused, a step failed): drop its workspace
        and give the warehouse back. The current publication was never touched."""
        held = _WORKSPACES.pop(context.run.run_id if context.run else "", None)
        if held is not None:
            workspace, lock = held
            publications = self.publications()
            if publications.current_run() != workspace.run_id:  # never the publication now current
                publications.discard(workspace)
            lock.release()

    def _workspace(self, run_id: str) -> Workspace:
        """The run's workspace, begun on first use: the lock taken and the current publication copied."""
        if run_id not in _WORKSPACES:
            _check_selection(dg.OpExecutionContext.get())
            publications = self.publications()
            lock = publications.lock(Owner.this_process(run_id))
            waited = lock.acquire(on_wait=_log)
            try:
                workspace = publications.begin(run_id)
            except BaseException:
                lock.release()
                raise
            _WORKSPACES[run_id] = (workspace, lock)
            _log(f"{HELD} by {run_id} (waited {waited:.1f} s); building in {workspace.directory}")
            if workspace.cleared:
                _log(f"removed what unpublished runs left behind: {', '.join(workspace.cleared)}")
        return _WORKSPACES[run_id][0]

    def _connect(self, database: Path) -> duckdb.DuckDBPyConnection:
        config = {"custom_user_agent": "dagster", **self.connection_config}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        return duckdb.connect(str(database), config=config)

    @contextmanager
    def get_connection(self):
        """A connection to this run's warehouse (outside a run: the current one, held alone), closed however
        the block ends: an asset that refuses raises inside it."""
        run_id = _run_id()
        lock = None
        if run_id is None:
            publications = self.publications()
            lock = publications.lock(Owner.this_process("(no run)"))
            lock.acquire(on_wait=_log)
            database = publications.live_database() or Path(self.database)
        else:
            database = self._workspace(run_id).database
        try:
            conn = self._connect(database)
            try:
                yield conn
            finally:
                conn.close()
        finally:
            if lock is not None:
                lock.release()

    def reports_folder(self) -> Path:
        """Where this run writes its report."""
        run_id = _run_id()
        if run_id is None:
            return Path(self.reports).expanduser()
        return self._workspace(run_id).reports

    def exports_folder(self) -> Path:
        """Where this run writes its exports, beside the kept runs' (outside a run: the published folder)."""
        run_id = _run_id()
        if run_id is None:
            return self.publications().exports
        return self._workspace(run_id).exports

    def scratch_folder(self) -> Path | None:
        """Room for this run's temporary files (source snapshots), beside its warehouse."""
        run_id = _run_id()
        return None if run_id is None else self._workspace(run_id).directory

    def publish(self, run_id: str, unfinished: Callable[[str], bool]) -> tuple[Published, list[str]] | None:
        """Swap this run's workspace in as the current publication, remove the loads it superseded, then
        give the warehouse back; the publication and the loads removed, or None when the run built nothing.
        `unfinished(run id)` tells a run still going, whose loads may be half built."""
        if run_id not in _WORKSPACES:
            return None
        workspace, lock = _WORKSPACES[run_id]
        with self._connect(workspace.database) as conn:
            conn.execute("CHECKPOINT")
        published = self.publications().publish(workspace, log=_log)
        del _WORKSPACES[run_id]  # published: teardown must not discard it
        try:
            # Still under the lock, so no publication is reading the history meanwhile.
            collected = self._collect_superseded_loads(published.database, unfinished)
        finally:
            lock.release()
        _log(f"{RELEASED}: {run_id} is the current publication")
        return published, collected

    def _collect_superseded_loads(self, database: Path, unfinished: Callable[[str], bool]) -> list[str]:
        """Remove the loads no longer in force that the publication in `database` does not read, and what
        loads of finished runs left half built."""
        with duckdb.connect(str(database), read_only=True) as conn:
            read = {load_id for (load_id,) in conn.execute("SELECT load_id FROM raw.loads").fetchall()}
        return self.lake().collect(keep=read, unfinished=unfinished)


# The runs of this process that hold the warehouse: run id → (workspace, lock). A run executes its steps
# in one process (the in-process executor), which holds the lock from its first step to its publication.
_WORKSPACES: dict[str, tuple[Workspace, HeldLock]] = {}


def in_worker_task() -> bool:
    """Whether this process is a Celery worker executing a step for a run orchestrated elsewhere."""
    state = sys.modules.get("celery._state")
    return state is not None and state.get_current_worker_task() is not None


def _check_selection(context: dg.OpExecutionContext) -> None:
    """Refuse a run that could publish a mixture: one that builds an asset but not what depends on it
    (the published report would describe other data than the tables), or one that resumes a failed run
    (whose work was never published, so its later steps would start from the last good run instead)."""
    run = context.run
    if run.parent_run_id and run.step_keys_to_execute is not None:
        raise dg.Failure(
            description="a failed run cannot be resumed from its failure: its work was never published; "
            "re-execute all of it (or start a new run)"
        )
    layer = context.job_def.asset_layer
    graph = layer.asset_graph
    selected = set(run.asset_selection or ()) or set(layer.executable_asset_keys)
    left_out = sorted(
        child.key.to_user_string()
        for key in selected
        for child in graph.get_children(graph.get(key))
        if child.key not in selected
    )
    if left_out:
        raise dg.Failure(
            description="this run's selection leaves out assets that depend on what it builds: "
            f"{', '.join(left_out)}; a run publishes everything it changes together, so select them too "
            "(Materialize all does)"
        )


def _run_id() -> str | None:
    try:
        return dg.OpExecutionContext.get().run_id
    except dg.DagsterInvariantViolationError:
        return None


def _log(message: str) -> None:
    """Into the running step's log, where there is one."""
    try:
        context = dg.OpExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return
    context.log.info(message)


class LoadRules(dg.ConfigurableResource):
    """What a load of one file may get wrong before it is refused, and what its lines must be."""

    max_missing_customer_share: float = Field(
        default=0.5,
        description="Most lines may lack a customer id (guest checkouts); beyond this share the export "
        "is suspect and refused.",
    )
    max_unparseable_share: float = Field(
        default=0.05,
        description="Beyond this share of unparseable dates, quantities or prices, a column is wrong, "
        "not a few lines, and the file is refused.",
    )
    absurd_quantity_factor: float | None = Field(
        default=1000.0,
        description="A line whose quantity exceeds this many times what its product's lines usually carry "
        "(their median) is an entry error, rejected as absurd; a genuine large order is not that far off. "
        "Empty turns the rule off.",
    )
    max_abs_quantity: int | None = Field(
        default=None,
        description="An absolute ceiling on quantities, either sign, for exports that need one; empty: none.",
    )
    earliest_date: str = Field(
        default="1900-01-01",
        description="Lines dated before this (ISO date) are taken for a wrong century (a two-digit year) and "
        "rejected as out of range.",
    )
    run_date: str | None = Field(
        default=None,
        description="Lines dated after this (ISO date) have not happened yet and are rejected. Empty "
        "means today.",
    )
    max_rejected_share: float = Field(
        default=0.75, description="A load is refused when more than this share of its lines is rejected."
    )

    def rules(self) -> LoadLimits:
        return LoadLimits(
            run_date=dt.date.fromisoformat(self.run_date) if self.run_date else dt.date.today(),
            earliest_date=dt.date.fromisoformat(self.earliest_date),
            max_abs_quantity=self.max_abs_quantity,
            max_missing_customer_share=self.max_missing_customer_share,
            max_unparseable_share=self.max_unparseable_share,
            max_rejected_share=self.max_rejected_share,
        )


class LandingFolder(dg.ConfigurableResource):
    """Folder the sensor watches for new exports."""

    path: str = Field(
        default=settings.INCOMING.default,
        description="Drop an export here and the landing-folder sensor starts a run on it.",
    )

    def resolve(self) -> Path:
        return Path(self.path).expanduser().resolve()

    def holds(self, path: Path) -> bool:
        """Whether `path` names something in the landing folder."""
        return path.parent.resolve() == self.resolve()

    def admit(self, path: Path) -> Path:
        """`path`, unless it is in the landing folder without being a regular file there (a link is never
        followed out of the folder); a source configured elsewhere is the user's own choice."""
        if self.holds(path) and not is_regular_file_in(self.resolve(), path):
            raise SourceFormatError(
                f"{path.name}: not loaded: only regular files inside the landing folder are read, and "
                "this is a link or not a file"
            )
        return path


def _configured(setting: settings.Setting) -> str | dg.EnvVar:
    """The environment variable when it is set, read when a run starts (the UI shows it by name); else the
    project's default."""
    return dg.EnvVar(setting.variable) if setting.value() != setting.default else setting.default


def production_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources, from the environment where it says otherwise and from the project's defaults else.

    Called when Dagster loads the definitions, never at import time.
    """
    return {
        "source": SourceFile(path=_configured(settings.SOURCE), mappings=_configured(settings.MAPPINGS)),
        "warehouse": Warehouse(
            database=_configured(settings.WAREHOUSE),
            reports=_configured(settings.REPORTS),
            # Unset, the exports sit beside the warehouse, wherever RETAIL_SEG_WAREHOUSE puts it.
            exports=_configured(settings.EXPORTS) if os.environ.get(settings.EXPORTS.variable) else "",
            memory_limit=_configured(settings.MEMORY_LIMIT),
        ),
        "landing": LandingFolder(path=_configured(settings.INCOMING)),
        "load_rules": LoadRules(),
    }
