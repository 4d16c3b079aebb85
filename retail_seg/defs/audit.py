"""Audit: each run's record, every customer's segment per run, and how customers moved since the last run."""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_seg.core.audit import (
    AUDIT_RUNS,
    SEGMENT_HISTORY,
    RunRecord,
    migration_since_previous,
    published_facts,
    record_run,
)
from retail_seg.core.figures import migration_heatmap
from retail_seg.core.warehouse import (
    FALLEN_FROM_HIGH_VALUE,
    SEGMENT_MIGRATION,
    build_candidate_from_frame,
    publish,
)
from retail_seg.defs.metadata import markdown_table, save_figure, table_metadata
from retail_seg.defs.resources import WAREHOUSE_POOL, ReportsFolder


def _source_lineage(context: dg.AssetExecutionContext) -> tuple[str | None, str | None]:
    """The source file and checksum behind the published raw table, from its latest materialization."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("raw_transactions"))
    if event is None or event.asset_materialization is None:
        return None, None
    metadata = event.asset_materialization.metadata
    source = metadata.get("source_file")
    digest = metadata.get("source_sha256")
    return (source.value if source else None), (digest.value if digest else None)


def _code_versions(context: dg.AssetExecutionContext) -> dict[str, str | None]:
    graph = context.job_def.asset_layer.asset_graph
    return {key.to_user_string(): graph.get(key).code_version for key in sorted(graph.get_all_asset_keys())}


@dg.asset(
    deps=["segment_profiles", "customer_segments", "customer_features"],
    group_name="audit",
    kinds={"duckdb"},
    code_version="1",
    pool=WAREHOUSE_POOL,
)
def segment_history(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """This run in audit.runs; every customer's segment, label and features in audit.segment_history."""
    source_file, source_sha256 = _source_lineage(context)
    with warehouse.get_connection() as conn:
        row_counts, rejected, metrics = published_facts(conn)
        record = RunRecord(
            run_id=context.run.run_id,
            recorded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            source_file=source_file,
            source_sha256=source_sha256,
            row_counts=row_counts,
            rejected_by_rule=rejected,
            parameters={"run_config": context.run.run_config, "tags": dict(context.run.tags)},
            metrics=metrics,
            code_versions=_code_versions(context),
        )
        customers = record_run(conn, record)
        runs = table_metadata(conn, AUDIT_RUNS)["dagster/row_count"]
        metadata = table_metadata(conn, SEGMENT_HISTORY)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "customers_recorded": customers,
            "runs_recorded": runs,
            "source_file": source_file or "unknown",
            "source_sha256": source_sha256 or "unknown",
        }
    )


@dg.asset(
    deps=["segment_history"],
    group_name="audit",
    kinds={"duckdb", "matplotlib"},
    code_version="1",
    pool=WAREHOUSE_POOL,
)
def segment_migration(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource, reports: ReportsFolder
) -> dg.MaterializeResult:
    """Customers moving between segments since the previous run, and those who fell from high-value."""
    with warehouse.get_connection() as conn:
        migration = migration_since_previous(conn, context.run.run_id)
        build_candidate_from_frame(
            conn, SEGMENT_MIGRATION, migration.matrix.assign(previous_run=migration.previous_run)
        )
        build_candidate_from_frame(conn, FALLEN_FROM_HIGH_VALUE, migration.fallen)
        publish(conn, SEGMENT_MIGRATION, FALLEN_FROM_HIGH_VALUE)
        metadata = table_metadata(conn, SEGMENT_MIGRATION)
    if migration.previous_run is None:
        return dg.MaterializeResult(
            metadata={**metadata, "previous_run": "none: this is the first recorded run"}
        )
    figures = {}
    if len(migration.matrix):  # no customer in both runs: nothing to draw
        folder = reports.prepare()
        _, figures["migration"] = save_figure(
            migration_heatmap(migration.matrix), folder, "segment_migration"
        )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **figures,
            "previous_run": migration.previous_run,
            "customers_in_both_runs": int(migration.matrix["customers"].sum()),
            "customers_only_in_previous": migration.only_before,
            "customers_new_in_this_run": migration.only_now,
            "fell_from_high_value": len(migration.fallen),
            "fallen_customers": markdown_table(migration.fallen.head(20)),
        }
    )
