"""Exports: what a CRM or campaign tool takes from a run, per segment and per named audience."""

import datetime as dt

import dagster as dg
import pandas as pd
from pydantic import Field

from retail_seg.core.exports import (
    ALLOWED_COLUMNS,
    CRM_COLUMNS,
    DEFAULT_AUDIENCES,
    PERSONAL_COLUMNS,
    Audience,
    ExportSettings,
    export_run,
)
from retail_seg.core.retention import prune_exports
from retail_seg.core.tables import AUDIENCE_HISTORY, AUDIENCE_MEMBERS, EXPORT_FILES, RETENTION
from retail_seg.defs.metadata import ANALYTICS, layer_tags, markdown_table, table_metadata
from retail_seg.defs.resources import Warehouse


class AudienceConfig(dg.Config):
    """One named audience: a filter over the segmented customers, and the share held out as control."""

    name: str = Field(description="Lower case letters, digits and _; names the audience's files.")
    where: str = Field(
        description="One SQL condition over the segmented customers, e.g. \"label = 'champions'\" or "
        "'monetary_rank >= 0.75 AND churn_risk >= 0.5'; it may test any exportable column "
        f"({', '.join(ALLOWED_COLUMNS)}), also one the files do not hold."
    )
    control_share: float = Field(
        default=0.0,
        description="Share of the audience held out as control (not to be contacted), chosen by "
        "md5(audience:customer id), so the same customers are held out on every run.",
    )


class ExportsConfig(dg.Config):
    """The columns the CRM files may hold and the audiences to build."""

    columns: list[str] = Field(
        default_factory=lambda: list(CRM_COLUMNS),
        description="The columns of every exported file, customer_id first. Personal data beyond the id "
        f"({', '.join(PERSONAL_COLUMNS)}) is exported only when listed here.",
    )
    keep_runs: int | None = Field(
        default=30,
        description="Keep the export folders of the newest this many runs (a month of nightly runs); older "
        "folders are removed and audit.retention says so. Empty keeps every run; at least 1.",
    )
    audiences: list[AudienceConfig] = Field(
        default_factory=lambda: [AudienceConfig(**vars(a)) for a in DEFAULT_AUDIENCES],
        description="Named audiences, each written with its control group and its changes since the "
        "previous run.",
    )

    def settings(self) -> ExportSettings:
        return ExportSettings(
            columns=tuple(self.columns),
            audiences=tuple(Audience(a.name, a.where, a.control_share) for a in self.audiences),
        )


@dg.asset(
    deps=["customer_segments", "segment_profiles", "customer_features", "customer_value", "customers"],
    group_name="exports",
    kinds={"duckdb", "csv", "parquet"},
    code_version="1",
    owners=ANALYTICS,
    tags=layer_tags("exports", personal_data="customer_id"),
)
def audiences(
    context: dg.AssetExecutionContext, config: ExportsConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """CRM-ready files for this run: each segment and each named audience (with its control group and
    who entered or left it since the previous run) as CSV and Parquet, and a manifest with every file's
    rows and SHA-256. Published with the run, all or nothing."""
    folder, now = warehouse.exports_folder(), dt.datetime.now(dt.UTC)
    with warehouse.get_connection() as conn:
        manifest = export_run(conn, folder, context.run.run_id, config.settings(), now)
        removed = prune_exports(conn, folder, config.keep_runs, context.run.run_id, now)
        metadata = table_metadata(conn, AUDIENCE_MEMBERS, AUDIENCE_HISTORY, EXPORT_FILES, RETENTION)
    counts = [
        {
            "audience": a.name,
            "to contact": a.target,
            "control": a.control,
            "entered": a.entered,
            "left": a.left,
        }
        for a in manifest.audiences
    ]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "files": len(manifest.files),
            "runs_kept_before_this": len([p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()])
            - 1,
            "export_folders_removed": len(removed),
            "columns": ", ".join(manifest.columns),
            "previous_run": manifest.previous_run or "none: every member entered",
            "audiences": markdown_table(pd.DataFrame(counts)) if counts else "none configured",
            "manifest": dg.MetadataValue.path(
                str(warehouse.publications().exports / context.run.run_id / "manifest.json")
            ),
        }
    )
