"""The project's settings: each an environment variable with a default under the checkout's `data/` folder.

The defaults live here, not in the Makefile, so `make`, `dg dev`, the plain `dagster` CLI and
`python -m retail_seg` all run the same pipeline on a fresh clone; an environment variable that is set
and not empty always wins. Nothing here imports dagster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJECT_ROOT / "data"
DEFAULT_SOURCE = DATA / "synthetic" / "transactions.csv"
INSTANCE_SETTINGS = PROJECT_ROOT / "retail_seg" / "dagster.yaml"


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
SETTINGS = (SOURCE, WAREHOUSE, REPORTS, DAGSTER_HOME, INCOMING, TIMEZONE, MEMORY_LIMIT)
