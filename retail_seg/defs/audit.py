"""Audit: each run's record, every customer's segment per run, and how customers moved since the last run."""

import datetime as dt

import dagster as dg
from pydantic import Field

from retail_seg.core.audit import migration_since_previous, record_run, run_record
from retail_seg.core.figures import migration_figures
from retail_seg.core.retention import compact_history
from retail_seg.core.tables import (
    AUDIT_RUNS,
    CUSTOMER_HISTORY,
    FALLEN_FROM_HIGH_VALUE,
    RETENTION,
    SEGMENT_EVENTS,
    SEGMENT_HISTORY,
    SEGMENT_MIGRATION,
)
from retail_seg.core.warehouse import build_candidate_from_frame, publish
from retail_seg.defs.metadata import ANALYTICS, layer_tags, record_figures, table_metadata
from retail_seg.defs.resources import Warehouse


class HistoryConfig(dg.Config):
    """How long the per-customer audit history is kept."""

    keep_runs: int | None = Field(
        default=400,
        description="Keep every customer's segment (and audience membership) for the newest this many runs "
        "(about 13 months of nightly runs); older runs keep their record in audit.runs, lose their "
        "per-customer rows, and audit.retention says so. Empty keeps every run; at least 2.",
    )


def _code_versions(context: dg.AssetExecutionContext) -> dict[str, str | None]:
    graph = context.job_def.asset_layer.asset_graph
    return {key.to_user_string(): graph.get(key).code_version for key in sorted(graph.get_all_asset_keys())}


@dg.asset(
    # Every asset whose tables the record counts.
    deps=[
        "transaction_history",
        "customers",
        "customer_features",
        "customer_value",
        "eda_summary",
        "model_features",
        "k_selection",
        "method_comparison",
        "customer_segments",
        "segment_profiles",
    ],
    group_name="audit",
    kinds={"duckdb"},
    code_version="3",
    owners=ANALYTICS,
    tags=layer_tags("audit", personal_data="customer_id"),
)
def segment_history(
    context: dg.AssetExecutionContext, config: HistoryConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """This run in audit.runs; every customer's segment, label and features in audit.segment_history;
    the per-customer history of runs past the retention removed (audit.retention)."""
    now = dt.datetime.now(dt.UTC)
    with warehouse.get_connection() as conn:
        record = run_record(
            conn,
            run_id=context.run.run_id,
            recorded_at=now.replace(tzinfo=None),
            parameters={"run_config": context.run.run_config, "tags": dict(context.run.tags)},
            code_versions=_code_versions(context),
        )
        customers = record_run(conn, record)
        removed = compact_history(conn, config.keep_runs, context.run.run_id, now)
        metadata = table_metadata(
            conn, SEGMENT_HISTORY, AUDIT_RUNS, CUSTOMER_HISTORY, SEGMENT_EVENTS, RETENTION
        )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "customers_recorded": customers,
            "runs_compacted": len({r.run_id for r in removed}),
            "source_file": record.source_file or "unknown",
            "source_sha256": record.source_sha256 or "unknown",
        }
    )


@dg.asset(
    deps=["segment_history"],
    group_name="audit",
    kinds={"duckdb", "matplotlib"},
    code_version="2",
    owners=ANALYTICS,
    tags=layer_tags("audit", personal_data="customer_id"),
)
def segment_migration(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Customers moving between segments since the previous run, and those who fell from champions."""
    with warehouse.get_connection() as conn:
        migration = migration_since_previous(conn, context.run.run_id)
        build_candidate_from_frame(
            conn, SEGMENT_MIGRATION, migration.matrix.assign(previous_run=migration.previous_run)
        )
        build_candidate_from_frame(conn, FALLEN_FROM_HIGH_VALUE, migration.fallen)
        publish(conn, SEGMENT_MIGRATION, FALLEN_FROM_HIGH_VALUE)
        figures = record_figures(conn, "segment_migration", migration_figures(migration))
        metadata = table_metadata(conn, SEGMENT_MIGRATION, FALLEN_FROM_HIGH_VALUE)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **figures,
            "previous_run": migration.previous_run or "none: this is the first recorded run",
            "customers_in_both_runs": int(migration.matrix["customers"].sum()),
            "customers_only_in_previous": migration.only_before,
            "customers_new_in_this_run": migration.only_now,
            "fell_from_high_value": len(migration.fallen),
            # Where they went, never who they are: Dagster's event log holds no customer id (README,
            # Retention and erasure); the customers are in marts.fallen_from_high_value.
            "fallen_to": dg.MetadataValue.json(
                {str(k): int(v) for k, v in migration.fallen["to_segment"].value_counts().items()}
            ),
        }
    )
