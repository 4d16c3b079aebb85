"""A run's work becomes visible all at once, or not at all: publications, and the lock that orders them.

A run never writes the published warehouse. It takes the warehouse's lock, copies the current
publication into a folder of its own, builds everything there (tables and report), and at its end makes
that folder the current publication by renaming one symbolic link. A refused or killed run leaves the
current publication exactly as it was; its folder is a leftover the next run removes. The lock is a
`flock`, which the kernel releases when its holder dies, so a dead run never blocks the next one. Beside
the warehouse file `W` (e.g. `data/warehouse.duckdb`):

    data/.warehouse.publications/
        lock                         flock of the run building a publication; its content says who
        current -> <run id>          the published state, swapped by one rename
        <run id>/warehouse.duckdb    a run's warehouse
        <run id>/reports/            a run's report folder
        <run id>/exports/            every kept run's CRM exports (files hard-linked from the publication
                                     before: an export file is never changed in place, only replaced)
    data/warehouse.duckdb -> .warehouse.publications/current/warehouse.duckdb
    data/reports          -> .warehouse.publications/current/reports
    data/exports          -> .warehouse.publications/current/exports

Readers open `W` read-only and always see one whole publication. A warehouse made before publications
(a plain file) is taken as the first current publication and becomes a link on the first publish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

DATABASE = "warehouse.duckdb"
REPORTS = "reports"
EXPORTS = "exports"
CURRENT = "current"
LOCK = "lock"
# Fault injection for the tests: a process whose RETAIL_SEG_FAULT_PAUSE names a point stops there, says so
# on stderr, and waits to be killed.
PAUSE_VARIABLE = "RETAIL_SEG_FAULT_PAUSE"
PAUSED = "retail_seg paused at"


def pause_point(point: str) -> None:
    """Stop here when the fault-injection variable names this point (tests kill the process there)."""
    if os.environ.get(PAUSE_VARIABLE) == point:
        os.write(2, f"{PAUSED} {point}\n".encode())
        time.sleep(3600)


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip()
    return ""


def _machine() -> str:
    """This machine and process namespace: a pid means the same process only where both are the same
    (a container sharing the host's name has a namespace of its own; a cloned VM a machine id of its own)."""
    with contextlib.suppress(OSError):
        return f"{_read('/etc/machine-id')}:{os.readlink('/proc/self/ns/pid')}"
    return ""


def _process_start(pid: int) -> str:
    """When a process started (clock ticks since boot), which tells it from a later one with its pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Owner:
    """The process a run executes in, identified so that another process can tell whether it still lives."""

    run_id: str
    pid: int
    host: str
    machine: str
    boot: str
    process_start: str

    @classmethod
    def this_process(cls, run_id: str) -> Owner:
        pid = os.getpid()
        boot = _read("/proc/sys/kernel/random/boot_id")
        return cls(run_id, pid, socket.gethostname(), _machine(), boot, _process_start(pid))

    def alive(self) -> bool | None:
        """Whether the process still runs; None when this process cannot tell: another host, machine or
        process namespace, or no /proc to look in. Only a definite answer releases a run."""
        here = Owner.this_process(self.run_id)
        if not (self.machine and self.boot and self.process_start and here.machine and here.process_start):
            return None
        if (self.host, self.machine) != (here.host, here.machine):
            return None
        if self.boot != here.boot:
            return False  # the machine restarted since
        return _process_start(self.pid) == self.process_start

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host})"

    def as_tags(self) -> dict[str, str]:
        return {f"retail_seg/{key}": str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Owner | None:
        try:
            return cls(
                run_id=tags["retail_seg/run_id"],
                pid=int(tags["retail_seg/pid"]),
                host=tags["retail_seg/host"],
                machine=tags["retail_seg/machine"],
                boot=tags["retail_seg/boot"],
                process_start=tags["retail_seg/process_start"],
            )
        except (KeyError, ValueError):
            return None


class HeldLock:
    """The warehouse's lock while a process holds it."""

    def __init__(self, path: Path, owner: Owner):
        self.path = path
        self.owner = owner
        self._handle = path.open("a+")

    def acquire(self, on_wait: Callable[[str], None], notify_every: float = 30.0) -> float:
        """Wait for the lock, saying every `notify_every` seconds who holds it; return the seconds waited."""
        start = time.monotonic()
        said = -notify_every
        while True:
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited - said >= notify_every:
                    on_wait(f"waiting for the warehouse: {self.holder()} holds it ({waited:.0f} s so far)")
                    said = waited
                time.sleep(0.2)
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(asdict(self.owner)))
        self._handle.flush()
        return time.monotonic() - start

    def holder(self) -> str:
        """Who the lock file says holds the warehouse."""
        try:
            return Owner(**json.loads(self.path.read_text())).describe()
        except (OSError, ValueError, TypeError):
            return "another process"

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


@dataclass(frozen=True)
class Workspace:
    """Where a run builds its publication."""

    run_id: str
    directory: Path
    cleared: tuple[str, ...]

    @property
    def database(self) -> Path:
        return self.directory / DATABASE

    @property
    def reports(self) -> Path:
        return self.directory / REPORTS

    @property
    def exports(self) -> Path:
        return self.directory / EXPORTS


@dataclass(frozen=True)
class Published:
    """What a publish made visible, and what it replaced."""

    run_id: str
    database: Path
    reports: Path
    exports: Path
    previous: str | None


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _relative(path: Path, target: Path) -> str:
    """`target` as seen from the folder `path` is in, that folder's own links resolved: the kernel
    resolves a link's `..` from the real folder it is in."""
    return os.path.relpath(target, path.parent.resolve())


def _link(path: Path, target: Path) -> None:
    """Point `path` at `target` in one rename, whatever `path` was before (a link, a file, nothing)."""
    staged = path.with_name(f".{path.name}.link-{os.getpid()}")
    staged.unlink(missing_ok=True)
    staged.symlink_to(_relative(path, target))
    os.replace(staged, path)


def _links_to(path: Path, target: Path) -> bool:
    return path.is_symlink() and os.readlink(path) == _relative(path, target)


def _new_files(folder: Path) -> list[Path]:
    """The files under `folder` written by this run: hard links kept from earlier runs are on disk already."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_nlink == 1
    )


class PublicationError(RuntimeError):
    """A configured path that a publication cannot use without destroying something."""


def _is_report_folder(folder: Path) -> bool:
    """A folder holding only what a report is made of (index.html and PNG figures)."""
    return all(p.is_file() and (p.name == "index.html" or p.suffix == ".png") for p in folder.iterdir())


class Publications:
    """The publications of one warehouse: which one is current, and how a run builds and swaps in its own."""

    def __init__(self, warehouse: Path, reports: Path, exports: Path | None = None):
        """`exports` defaults to a folder `exports` beside the warehouse file."""
        self.warehouse = Path(warehouse).expanduser().absolute()
        self.reports = Path(reports).expanduser().absolute()
        self.exports = Path(exports).expanduser().absolute() if exports else self.warehouse.parent / EXPORTS
        self.root = self.warehouse.parent.resolve() / f".{self.warehouse.stem}.publications"

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    def current_run(self) -> str | None:
        """The run whose publication is current, if any."""
        return os.readlink(self.current) if self.current.is_symlink() else None

    def live_database(self) -> Path | None:
        """The published warehouse file, if there is one yet."""
        if self.current_run():
            return self.current / DATABASE
        return self._legacy_database()

    def lock(self, owner: Owner) -> HeldLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return HeldLock(self.root / LOCK, owner)

    def _legacy_database(self) -> Path | None:
        """A warehouse from before publications: a plain file where the link will be."""
        if self.warehouse.is_file() and not self.warehouse.is_symlink():
            return self.warehouse
        return None

    def _legacy_reports(self) -> Path | None:
        """A report folder from before publications: a plain folder of report files where the link will be."""
        if self.reports.is_dir() and not self.reports.is_symlink() and _is_report_folder(self.reports):
            return self.reports
        return None

    def check_paths(self) -> None:
        """Refuse, before anything is built, configured paths whose link would replace something else: a
        publication may replace a warehouse file or report folder from before publications (it copies
        them first), and nothing more."""
        published = self.current_run() is not None
        for path, name, legacy in (
            (self.warehouse, DATABASE, self._legacy_database()),
            (self.reports, REPORTS, self._legacy_reports()),
            (self.exports, EXPORTS, None),
        ):
            if not path.exists() and not path.is_symlink():
                continue
            if _links_to(path, self.current / name) or (legacy is not None and not published):
                continue
            raise PublicationError(
                f"{path}: already holds something that is not this warehouse's published {name} "
                f"(a link to {self.current / name}); point the setting at a new path or move it away"
            )

    def begin(self, run_id: str) -> Workspace:
        """A folder for `run_id` holding a copy of the current publication, and no leftover of dead runs.

        The caller holds the lock.
        """
        self.check_paths()
        cleared = self._clear_leftovers(keep=run_id)
        workspace = self.root / run_id
        shutil.rmtree(workspace, ignore_errors=True)
        (workspace / REPORTS).mkdir(parents=True)
        if self.current_run():
            database, reports = self.current / DATABASE, self.current / REPORTS
            exports = self.current / EXPORTS
            if exports.is_dir():  # hard links: as cheap for a year of exports as for one
                shutil.copytree(exports, workspace / EXPORTS, symlinks=True, copy_function=os.link)
        else:
            database, reports = self._legacy_database(), self._legacy_reports()
        (workspace / EXPORTS).mkdir(exist_ok=True)
        if database is not None:
            shutil.copyfile(database, workspace / DATABASE)
            wal = database.with_name(database.name + ".wal")  # left by a process that wrote it and died
            if wal.exists():
                shutil.copyfile(wal, workspace / (DATABASE + ".wal"))
        if reports is not None:
            shutil.copytree(reports, workspace / REPORTS, dirs_exist_ok=True)
        return Workspace(run_id, workspace, tuple(cleared))

    def _clear_leftovers(self, keep: str) -> list[str]:
        """Remove every folder that is neither current nor `keep`'s: runs that died or were refused."""
        current = self.current_run()
        cleared = []
        for entry in sorted(self.root.iterdir()):
            if entry.name in (CURRENT, LOCK, current, keep) or entry.is_symlink():
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                cleared.append(entry.name)
            elif entry.name.startswith("."):
                entry.unlink(missing_ok=True)  # a link staged by a process that died before renaming it
        return cleared

    def publish(self, workspace: Workspace, log: Callable[[str], None] = print) -> Published:
        """Make the workspace the current publication in one rename, then tidy what it replaced.

        The workspace's database must be closed. Everything is flushed to disk first, so that a crash of
        the machine right after the rename finds the new publication whole. Nothing after the rename
        raises: from there on the run is published, and what is left to tidy is logged if it fails.
        """
        for path in (
            workspace.database,
            *sorted(workspace.reports.rglob("*")),
            *_new_files(workspace.exports),
        ):
            if path.is_file() and not path.is_symlink():
                _fsync(path)
        for folder in (workspace.reports, *sorted(p for p in workspace.exports.rglob("*") if p.is_dir())):
            _fsync(folder)
        _fsync(workspace.exports)
        _fsync(workspace.directory)
        legacy = (self._legacy_database(), self._legacy_reports())
        for path, name in ((self.warehouse, DATABASE), (self.reports, REPORTS), (self.exports, EXPORTS)):
            if not path.exists() and not path.is_symlink():
                path.parent.mkdir(parents=True, exist_ok=True)
                _link(path, self.current / name)  # new paths point through `current` before it exists
        previous = self.current_run()
        pause_point("before-swap")
        _link(self.current, workspace.directory)
        _fsync(self.root)
        pause_point("after-swap")
        try:
            self._replace_legacy(*legacy, run_id=workspace.run_id)
            if previous and previous != workspace.run_id:
                shutil.rmtree(self.root / previous, ignore_errors=True)
        except OSError as error:
            log(f"published {workspace.run_id}; tidying afterwards failed, the next run tries again: {error}")
        return Published(workspace.run_id, self.warehouse, self.reports, self.exports, previous)

    def _replace_legacy(self, database: Path | None, reports: Path | None, run_id: str) -> None:
        """Replace a warehouse file and report folder from before publications (both copied into the first
        publication) by links through `current`."""
        if database is not None:
            _link(database, self.current / DATABASE)
            for stale in (".wal", ".lock"):
                database.with_name(database.name + stale).unlink(missing_ok=True)
        if reports is not None:
            aside = self.root / f".legacy-reports-{run_id}"
            try:
                os.rename(reports, aside)  # removed with the leftovers by the next run
            except OSError:
                shutil.rmtree(reports)  # on another file system: it holds only report files, all copied
            _link(reports, self.current / REPORTS)

    def discard(self, workspace: Workspace) -> None:
        """Remove a workspace that will not be published."""
        shutil.rmtree(workspace.directory, ignore_errors=True)
