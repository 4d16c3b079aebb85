"""The landing folder: which exports are new or changed since the last look, by content checksum.

The folder is a boundary: only regular files directly inside it are read. A link is never followed,
wherever it points, so a link to a file outside (a key file, a password file) is never loaded or echoed.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from retail_seg.core.sources import SUPPORTED_SUFFIXES, file_sha256


@dataclass(frozen=True)
class Arrival:
    """A file whose content, name or modification time has not been looked at before."""

    path: Path
    sha256: str
    mtime_ns: int


@dataclass(frozen=True)
class Scan:
    """What a look at the landing folder found."""

    arrivals: list[Arrival]
    ignored: list[str]
    seen: dict


def scan_landing(folder: Path, seen: dict, now: float, settle_seconds: float = 10.0) -> Scan:
    """Files in `folder` that are new or changed since `seen`, what was passed over and why, and the new
    memory of what was seen.

    `seen` maps each file present to [mtime_ns, size, sha256], so an unchanged file is never hashed
    twice; files no longer there are forgotten, so the memory stays as small as the folder. Files
    modified in the last `settle_seconds` may still be being copied in and wait for the next look.
    """
    files = dict(seen.get("files", {}))
    present, arrivals, ignored = {}, [], []
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in entries:
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        try:
            info = os.lstat(path)
        except OSError as error:  # gone since the listing: not there
            ignored.append(f"{path.name}: ignored, {error.strerror.lower()}")
            continue
        if not stat.S_ISREG(info.st_mode):
            kind = "a link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            ignored.append(f"{path.name}: ignored, {kind}; only files inside the landing folder are read")
            continue
        if now - info.st_mtime < settle_seconds:
            continue
        known = files.get(str(path))
        if known and known[:2] == [info.st_mtime_ns, info.st_size]:
            present[str(path)] = known
            continue
        try:
            digest = file_sha256(path)
        except OSError as error:  # unreadable (permissions) or gone: the other files still go ahead
            ignored.append(f"{path.name}: ignored, cannot be read ({error.strerror.lower()})")
            continue
        present[str(path)] = [info.st_mtime_ns, info.st_size, digest]
        arrivals.append(Arrival(path, digest, info.st_mtime_ns))
    return Scan(arrivals, ignored, {"files": present})


def is_regular_file_in(folder: Path, path: Path) -> bool:
    """Whether `path` is a regular file directly inside `folder`, reached without following a link."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and path.parent.resolve() == folder.resolve()
