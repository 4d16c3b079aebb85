"""Loads: one file into the history, as a partition of the raw and staging layers, behind their gates.

Each file is a partition (its name is the key, so a corrected file under the same name supersedes it).
A load writes its lines into the lake, beside the warehouse, never into the warehouse: loads of
different files share nothing and may run at once; the publication reads every accepted load.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from retail_seg.core.lake import file_key
from retail_seg.core.loads import LoadOutcome, load_file
from retail_seg.defs.gates import Gate
from retail_seg.defs.metadata import DATA_ENGINEERING, layer_tags
from retail_seg.defs.resources import LandingFolder, LoadRules, SourceFile, Warehouse

SOURCE_FILES = dg.DynamicPartitionsDefinition(name="source_files")
RAW_GATE = Gate(
    "raw_transactions",
    "raw",
    "The file has lines and every canonical column, and its dates, quantities, prices and customer ids "
    "mostly parse.",
    (),
)
STAGING_GATE = Gate(
    "clean_transactions",
    "staging",
    "Invoice lines unique, sales positive, dates plausible, a customer on every line, and not too many "
    "lines rejected.",
    (),
)
LOADED = ("raw_transactions", "clean_transactions", "rejected_rows")


class LoadConfig(dg.Config):
    """Which file a load reads."""

    source: str | None = Field(
        default=None,
        description="The file to load; the landing-folder sensor sets it. Empty: the file of the configured "
        "source whose name is the partition's key.",
    )


def _spec(key: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        description=description,
        group_name="raw" if key == "raw_transactions" else "staging",
        kinds={"duckdb", "parquet"},
        code_version="6",
        owners=DATA_ENGINEERING,
        tags=layer_tags("raw" if key == "raw_transactions" else "staging", personal_data="demographics"),
        partitions_def=SOURCE_FILES,
        deps=[] if key == "raw_transactions" else ["raw_transactions"],
    )


@dg.multi_asset(
    specs=[
        _spec("raw_transactions", "One file's lines as the export wrote them, behind the raw gate."),
        _spec("clean_transactions", "One file's typed, deduplicated lines, returns flagged, a line total."),
        _spec("rejected_rows", "One file's lines staging refused, with the rule each broke and its values."),
    ],
    check_specs=[RAW_GATE.spec, STAGING_GATE.spec],
    partitions_def=SOURCE_FILES,
)
def file_load(
    context: dg.AssetExecutionContext,
    config: LoadConfig,
    source: SourceFile,
    landing: LandingFolder,
    load_rules: LoadRules,
    warehouse: Warehouse,
):
    """Take one file into the history: accepted when its raw and staging gates pass, refused otherwise."""
    path = (
        Path(config.source).expanduser().absolute()
        if config.source
        else _source_file(source, context.partition_key)
    )
    outcome = load_file(
        landing.admit(path),
        warehouse.lake(),
        load_id=f"{context.partition_key}@{context.run.run_id}",
        run_id=context.run.run_id,
        rules=load_rules.rules(),
        mappings=source.known_mappings(),
        id_key=source.id_key(),
        memory_limit=warehouse.memory_limit,
        follow_links=not landing.holds(path),
    )
    yield from load_results(outcome)


def _source_file(source: SourceFile, key: str) -> Path:
    matches = [path for path in source.files() if file_key(path) == key]
    if not matches:
        raise dg.Failure(description=f"no file of the source {source.resolve()} has the key {key!r}")
    return matches[0]


def load_results(outcome: LoadOutcome):
    """A load's gate verdicts and materializations; a refused load ends its step in plain words."""
    yield RAW_GATE.check_result(outcome.raw_gate)
    if outcome.staging_gate is not None:
        yield STAGING_GATE.check_result(outcome.staging_gate)
    if not outcome.accepted:
        gate = outcome.staging_gate if outcome.refused_at == "staging" else outcome.raw_gate
        raise dg.Failure(
            description=f"{outcome.record.source_file} refused: {gate.message()}; its lines are kept in "
            f"{outcome.kept}; the history keeps its last accepted version of this file",
            allow_retries=False,
        )
    record = outcome.record
    facts = {
        "load_id": record.load_id,
        "source_file": dg.MetadataValue.path(record.source_file),
        "source_sha256": record.sha256,
        "mapping": record.mapping,
        "supersedes": outcome.superseded.load_id if outcome.superseded else "nothing: a new file",
    }
    yield dg.MaterializeResult(
        asset_key="raw_transactions", metadata={**facts, "dagster/row_count": record.lines}
    )
    yield dg.MaterializeResult(
        asset_key="clean_transactions", metadata={**facts, "dagster/row_count": record.clean}
    )
    yield dg.MaterializeResult(
        asset_key="rejected_rows",
        metadata={
            **facts,
            "dagster/row_count": record.rejected,
            "rejected_by_rule": dg.MetadataValue.json(
                outcome.cleaning.rejected_by_rule if outcome.cleaning else {}
            ),
        },
    )
