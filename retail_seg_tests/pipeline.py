"""Run every asset with dg.materialize into a temporary warehouse (shared by the pipeline tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import duckdb

from retail_seg.definitions import ASSETS
from retail_seg.defs.resources import LandingFolder, LoadRules, SourceFile, Warehouse

# Every asset of the graph, named here rather than read from the definitions so a lost asset fails.
ALL_ASSETS = {
    "raw_transactions",
    "clean_transactions",
    "rejected_rows",
    "customers",
    "customer_features",
    "customer_value",
    "eda_summary",
    "model_features",
    "k_selection",
    "method_comparison",
    "customer_segments",
    "segment_profiles",
    "segment_report",
    "audiences",
    "segment_history",
    "segment_migration",
    "transaction_history",
    "publication",
}


def resources(
    source: Path, workdir: Path, mappings: Path | None = None
) -> dict[str, dg.ConfigurableResource]:
    """The pipeline's resources on `source`, writing under `workdir` (`mappings`: the user's own)."""
    return {
        "source": SourceFile(path=str(source), **({"mappings": str(mappings)} if mappings else {})),
        "landing": LandingFolder(path=str(workdir / "incoming")),
        "warehouse": Warehouse(database=str(workdir / "warehouse.duckdb"), reports=str(workdir / "reports")),
        "load_rules": LoadRules(),
    }


PUBLISHED = [key for asset in ASSETS if asset.partitions_def is None for key in asset.keys]


def materialize_all(
    source: Path, workdir: Path, run_config: dict | None = None, mappings: Path | None = None
) -> dg.ExecuteInProcessResult:
    """One run over `source`, writing under `workdir`: its new files loaded into the history, then every
    customer re-segmented and published (as `python -m retail_seg run` does)."""
    return dg.materialize(
        ASSETS,
        selection=PUBLISHED,
        resources=resources(source, workdir, mappings),
        run_config=run_config,
        raise_on_error=False,
    )


def query(workdir: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Read the warehouse left by a run."""
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql, params).fetchall()


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (through links) and the SHA-256 of its bytes: equal means the same folder."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def told_to_win_back(workdir: Path):
    """The customers a run put in a win-back segment (their recency), and the base's typical gap between
    purchases, derived here from the published features (median mean_days_between over repeat buyers)."""
    import pandas as pd

    from retail_seg.core.profiles import WIN_BACK

    customers = pd.DataFrame(
        query(
            workdir,
            "SELECT f.recency_days, f.frequency, f.mean_days_between, s.label FROM marts.customer_features f "
            "JOIN marts.customer_segments s USING (customer_id)",
        ),
        columns=["recency_days", "frequency", "mean_days_between", "label"],
    )
    typical = customers.loc[customers["frequency"] > 1, "mean_days_between"].median()
    return customers[customers["label"].isin(WIN_BACK)], typical, len(customers)
