"""The landing folder: which exports are new or changed since the last look, by content checksum."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retail_seg.core.sources import SUPPORTED_SUFFIXES, file_sha256


@dataclass(frozen=True)
class Arrival:
    """A file whose content has not been run before."""

    path: Path
    sha256: str


def scan_landing(
    folder: Path, seen: dict, now: float, settle_seconds: float = 10.0
) -> tuple[list[Arrival], dict]:
    """Files in `folder` with content not seen before, and the updated memory of what was seen.

    `seen` maps each file path to [mtime_ns, size, sha256] and keeps the checksums already handed out
    under "digests", so an unchanged file is never hashed twice and the same content is never run
    twice, whatever it is called. Files modified in the last `settle_seconds` may still be being
    copied in and wait for the next look.
    """
    files = dict(seen.get("files", {}))
    digests = set(seen.get("digests", []))
    arrivals = []
    if folder.is_dir():
        for path in sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
        ):
            stat = path.stat()
            if now - stat.st_mtime < settle_seconds:
                continue
            known = files.get(str(path))
            if known and known[:2] == [stat.st_mtime_ns, stat.st_size]:
                continue
            digest = file_sha256(path)
            files[str(path)] = [stat.st_mtime_ns, stat.st_size, digest]
            if digest not in digests:
                digests.add(digest)
                arrivals.append(Arrival(path, digest))
    return arrivals, {"files": files, "digests": sorted(digests)}
