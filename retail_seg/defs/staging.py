"""Staging layer: the history of every accepted load, and one row per customer."""

import dagster as dg

from retail_seg.core.cleaning import build_customers
from retail_seg.core.history import MixedHistory, adopt_tables, build_history
from retail_seg.core.lake import file_key
from retail_seg.core.loads import LoadOutcome, Pending, pending_files
from retail_seg.core.mappings import SourceFormatError
from retail_seg.core.tables import (
    CUSTOMER_FLAGS,
    CUSTOMER_TABLE,
    CUSTOMERS,
    LOAD_EVENTS,
    RAW_LOADS,
    REJECTED_ACROSS_LOADS,
    REJECTED_ROWS,
    STAGING_INVOICES,
    STAGING_TRANSACTIONS,
)
from retail_seg.core.warehouse import publish
from retail_seg.defs.ingest import SOURCE_FILES, load, load_events, refusal_message
from retail_seg.defs.metadata import DATA_ENGINEERING, layer_tags, table_metadata
from retail_seg.defs.resources import LoadRules, SourceFile, Warehouse
from retail_seg.defs.runs import loads_in_flight, wait_for_runs

LOADS_CHECK = dg.AssetCheckSpec(
    name="every_file_loaded",
    asset="transaction_history",
    description="Every file of the configured source is in the history as it is now (a refused file keeps "
    "its last accepted version, or none, and is named here).",
)


@dg.asset(
    deps=["raw_transactions", "clean_transactions", "rejected_rows"],
    group_name="staging",
    kinds={"duckdb", "parquet"},
    code_version="3",
    owners=DATA_ENGINEERING,
    tags=layer_tags("staging", personal_data="demographics"),
    check_specs=[LOADS_CHECK],
)
def transaction_history(
    context: dg.AssetExecutionContext, source: SourceFile, load_rules: LoadRules, warehouse: Warehouse
):
    """Every accepted load as the staging layer: lines repeated across files count once.

    It first loads the files of the configured source that the history does not hold as they are now
    (new, or corrected under the same name), each as its own partition; a refused file is named by a
    warning (and in `audit.load_events`) and the history goes ahead with what was accepted.
    """
    lake = warehouse.lake()
    # Under the warehouse's lock: a run's loads and its publication are one unit, so two runs at once end
    # as if one ran after the other.
    with warehouse.get_connection() as conn:
        # A warehouse from before the lake: its staging tables become the history's first load.
        adopted = adopt_tables(conn, lake, context.run.run_id)
        outcomes, still_refused = catch_up(context, source, load_rules, warehouse)
        refused = [refusal_message(o) for o in outcomes if not o.accepted] + still_refused
        try:
            history = build_history(
                conn, lake, context.run.run_id, absurd_factor=load_rules.absurd_quantity_factor
            )
        except MixedHistory as mixed:
            raise dg.Failure(description=str(mixed), allow_retries=False) from None
        metadata = table_metadata(
            conn,
            STAGING_TRANSACTIONS,
            REJECTED_ROWS,
            RAW_LOADS,
            REJECTED_ACROSS_LOADS,
            STAGING_INVOICES,
            LOAD_EVENTS,
            CUSTOMER_TABLE,
            CUSTOMER_FLAGS,
        )
    yield dg.AssetCheckResult(
        check_name="every_file_loaded",
        passed=not refused,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(refused) or "every file of the source is in the history as it is now",
        metadata={"refused": len(refused)},
    )
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "loads": len(history.loads),
            "lines": history.lines,
            "repeated_across_files": history.duplicates,
            "history_sha256": history.checksum,
            "adopted_from_before_the_lake": adopted.lines if adopted else 0,
            "refused_files": dg.MetadataValue.md("\n".join(f"- {r}" for r in refused) or "none"),
            "loads_added": history.count("loaded"),
            "loads_superseded": history.count("superseded"),
        }
    )


# How long a publication waits for loads of its files that are already running elsewhere.
LOAD_WAIT_SECONDS = 3600.0


def _pending(source: SourceFile, warehouse: Warehouse) -> Pending:
    try:
        return pending_files(warehouse.lake(), source.files())
    except SourceFormatError as missing:  # the source names a file that is not there: say so
        raise dg.Failure(description=str(missing), allow_retries=False) from None


def catch_up(
    context, source: SourceFile, load_rules: LoadRules, warehouse: Warehouse
) -> tuple[list[LoadOutcome], list[str]]:
    """Load every file of the configured source whose content the history does not hold, each recorded as
    a materialization (or a refusal) of its partition; return the outcomes, and the files whose content
    was refused before (not loaded again until they change)."""
    found = _pending(source, warehouse)
    # Loads of these files already running (the sensor's, on the workers of the distributed profile): the
    # history takes what they accept rather than loading the same files a second time beside them.
    running = loads_in_flight(context.instance, {file_key(p) for p in found.files})
    if running:
        context.log.info(f"waiting for {len(running)} load run(s) of these files: {', '.join(running)}")
        left = wait_for_runs(context.instance, running, timeout=LOAD_WAIT_SECONDS)
        if left:
            context.log.warning(f"still unfinished after {LOAD_WAIT_SECONDS:.0f} s, loading here: {left}")
        found = _pending(source, warehouse)
    pending, still_refused = found.files, found.still_refused
    if pending:
        context.instance.add_dynamic_partitions(SOURCE_FILES.name, [file_key(p) for p in pending])
    outcomes = []
    for path in pending:
        outcome = load(context, path, source, load_rules, warehouse)
        context.log.info(
            f"loaded {path.name}: {outcome.record.clean:,} clean, {outcome.record.rejected:,} rejected"
            if outcome.accepted
            else refusal_message(outcome)
        )
        for event in load_events(outcome):
            context.log_event(event)
        outcomes.append(outcome)
    return outcomes, still_refused


@dg.asset(
    deps=["transaction_history"],
    group_name="staging",
    kinds={"duckdb"},
    code_version="2",
    owners=DATA_ENGINEERING,
    tags=layer_tags("staging", personal_data="demographics"),
)
def customers(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer: the demographics the source has (age, gender, country) and first/last seen."""
    with warehouse.get_connection() as conn:
        built = build_customers(conn)
        publish(conn, CUSTOMERS)
        metadata = table_metadata(conn, CUSTOMERS)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "customers_with_age": built.with_age,
            "customers_with_gender": built.with_gender,
        }
    )
