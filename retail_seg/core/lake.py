"""The lake: every accepted load of a file, kept as Parquet beside the warehouse, durable on its own.

A *load* takes one file into the history. It is built aside, in a folder of its own named by a fresh
load id, and accepted by one rename of the file's pointer; a load that dies or is refused leaves the
pointers as they were. Loads of different files share nothing but the folder, so any number may run at
once, on any worker; only publications take the warehouse's lock. Beside the warehouse file `W`:

    data/.warehouse.lake/
        loads/<load id>/lines.parquet      the load's clean lines, typed
        loads/<load id>/rejected.parquet   its rejected lines, with their rule and values as the file had them
        loads/<load id>/quantities.parquet the quantities each product's lines carry, counted
        loads/<load id>/invoices.parquet   its clean lines summed per customer, invoice and date
        loads/<load id>/load.json          what was loaded: the file, its checksum, mapping, counts, when
        accepted/<file key>.json           the load in force for a file (a corrected file supersedes it)
        refused/<load id>/...              a refused load, kept to be looked at

A file's key is its name: the same name with other content is a correction of the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

LINES = "lines.parquet"
REJECTED = "rejected.parquet"
QUANTITIES = "quantities.parquet"
INVOICES = "invoices.parquet"
MANIFEST = "load.json"


def file_key(path: Path) -> str:
    """A file's key in the history (and its Dagster partition): its name, in characters any system takes."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.name)


@dataclass(frozen=True)
class LoadRecord:
    """One load of one file."""

    load_id: str
    key: str
    source_file: str
    sha256: str
    bytes: int
    mapping: str
    lines: int
    clean: int
    rejected: int
    loaded_at: str
    run_id: str
    encoding: str = ""
    currency: str = ""  # what its amounts are in; "" where the export names no currency

    @property
    def folder_name(self) -> str:
        return self.load_id


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    with staged.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staged, path)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Lake:
    """The accepted loads of one warehouse's history."""

    def __init__(self, warehouse: Path):
        warehouse = Path(warehouse).expanduser().absolute()
        self.root = warehouse.parent.resolve() / f".{warehouse.stem}.lake"
        self.loads = self.root / "loads"
        self.pointers = self.root / "accepted"
        self.refusals = self.root / "refused"

    def building(self, load_id: str) -> Path:
        """The folder a load is built in (aside: nothing points at it until it is accepted)."""
        folder = self.loads / load_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def begin_attempt(self, load_id: str) -> tuple[str, Path]:
        """A folder of its own for a load, claimed atomically: `load_id`, or when another attempt of the same
        step holds that id (it died, or a broker delivered the step twice), `<file key>~<n>@<run id>`. An
        attempt never builds over another's files, one of which may be in force."""
        self.loads.mkdir(parents=True, exist_ok=True)
        stem, at, run_id = load_id.rpartition("@")
        attempt, n = load_id, 1
        while True:
            try:
                (self.loads / attempt).mkdir()
                return attempt, self.loads / attempt
            except FileExistsError:
                n += 1
                attempt = f"{stem}~{n}{at}{run_id}"

    def accept(self, record: LoadRecord) -> LoadRecord | None:
        """Make `record` the load in force for its file, in one rename; return the load it supersedes."""
        folder = self.loads / record.load_id
        _write_atomically(folder / MANIFEST, json.dumps(asdict(record), indent=1))
        _fsync_tree(folder)
        self.pointers.mkdir(parents=True, exist_ok=True)
        previous = self.accepted().get(record.key)
        _write_atomically(self.pointers / f"{record.key}.json", json.dumps({"load_id": record.load_id}))
        return previous

    def refuse(self, record: LoadRecord, reason: str) -> Path:
        """Keep a refused load aside, with why; nothing in force changes."""
        folder = self.loads / record.load_id
        target = self.refusals / record.load_id
        self.refusals.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            shutil.rmtree(target, ignore_errors=True)
            os.replace(folder, target)
        target.mkdir(parents=True, exist_ok=True)
        _write_atomically(target / MANIFEST, json.dumps({**asdict(record), "refused": reason}, indent=1))
        return target

    def record(self, load_id: str) -> LoadRecord:
        return LoadRecord(**json.loads((self.loads / load_id / MANIFEST).read_text()))

    def accepted(self) -> dict[str, LoadRecord]:
        """The load in force for each file, by file key."""
        found = {}
        if self.pointers.is_dir():
            for pointer in sorted(self.pointers.glob("*.json")):
                with contextlib.suppress(OSError, ValueError, TypeError):
                    record = self.record(json.loads(pointer.read_text())["load_id"])
                    found[record.key] = record
        return found

    def refused(self) -> list[tuple[LoadRecord, str]]:
        """Every refused load kept aside, with the reason it was refused."""
        found = []
        for manifest in sorted(self.refusals.glob(f"*/{MANIFEST}")) if self.refusals.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, TypeError):
                fields = json.loads(manifest.read_text())
                reason = fields.pop("refused")
                found.append((LoadRecord(**fields), reason))
        return found

    def files(self, record: LoadRecord) -> tuple[Path, Path]:
        """A load's clean and rejected lines."""
        folder = self.loads / record.load_id
        return folder / LINES, folder / REJECTED

    def invoices(self, record: LoadRecord) -> Path:
        """A load's clean lines summed per invoice (absent for loads made before loads kept them)."""
        return self.loads / record.load_id / INVOICES

    def quantities(self, record: LoadRecord) -> Path:
        """The quantities a load's products carry (absent for a load adopted from before the lake)."""
        return self.loads / record.load_id / QUANTITIES

    def collect(self, keep: set[str], unfinished: Callable[[str], bool]) -> list[str]:
        """Remove the loads neither in force nor in `keep` (the loads a publication still reads) whose run has
        finished (`unfinished(run id)` is false, asked now: a load of a run still going may be half built,
        or about to be accepted); return their ids. A dead run's half-built load goes once the run is
        marked failed."""
        in_force = {record.load_id for record in self.accepted().values()}
        removed = []
        if self.loads.is_dir():
            for folder in sorted(self.loads.iterdir()):
                if (
                    folder.name in in_force
                    or folder.name in keep
                    or unfinished(folder.name.rpartition("@")[2])
                ):
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed
