"""Resources: where the pipeline reads its source and writes its warehouse and reports."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource


class SourceFile(dg.ConfigurableResource):
    """The transactions export to segment (CSV or Parquet; the format is recognised from the header)."""

    path: str

    def resolve(self) -> Path:
        return Path(self.path).expanduser().resolve()


# DuckDB lets one process hold the warehouse file: every step that opens it shares this pool, whose
# limit is 1 in the instance's dagster.yaml, so concurrent runs take turns instead of failing on a lock.
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
        "warehouse": DuckDBResource(database=dg.EnvVar("RETAIL_SEG_WAREHOUSE")),
        "reports": ReportsFolder(path=dg.EnvVar("RETAIL_SEG_REPORTS")),
        "landing": LandingFolder(path=dg.EnvVar("RETAIL_SEG_INCOMING")),
    }
