"""The project's settings: each an environment variable with a default under the checkout's `data/` folder.

The defaults live here, not in the Makefile, so `make`, `dg dev`, the plain `dagster` CLI and
`python -m retail_seg` all run the same pipeline on a fresh clone; an environment variable that is set
and not empty always wins. Nothing here imports dagster.
"""

from __future__ import annotations

import os
import secrets
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
SETTINGS = (SOURCE, WAREHOUSE, REPORTS, DAGSTER_HOME, INCOMING, TIMEZONE, MEMORY_LIMIT, MAPPINGS, ID_KEY)


def id_key() -> str:
    """The secret that hashes personal customer keys: RETAIL_SEG_ID_KEY itself, or the file it names
    (by default `data/.id_key`, made with a random key on first use and readable by its owner only)."""
    value = ID_KEY.value()
    path = Path(value)
    if value != ID_KEY.default and not path.is_file():
        return value
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()
