"""Helpers for tests that run the project as a user would: in processes, with a Dagster home of its own."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def project_environment(workdir: Path, source: Path) -> dict[str, str]:
    """Environment for a run or a server over `workdir`, with the project's instance settings."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "retail_seg" / "dagster.yaml", home / "dagster.yaml")
    (workdir / "incoming").mkdir(exist_ok=True)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RETAIL_SEG_SOURCE": str(source),
        "RETAIL_SEG_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        "RETAIL_SEG_REPORTS": str(workdir / "reports"),
        "RETAIL_SEG_INCOMING": str(workdir / "incoming"),
        "RETAIL_SEG_MEMORY_LIMIT": "2GB",
        "GX_ANALYTICS_ENABLED": "false",
    }


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_processes(session_id: int) -> list[int]:
    """Live processes of a process session (what a server left behind when it should be gone)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive
