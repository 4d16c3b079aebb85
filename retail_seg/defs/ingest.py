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
from retail_seg.defs.runs import LOADS

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
LOADED = tuple(key.to_user_string() for key in sorted(LOADS))


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
        code_version="10",
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
    run = context.instance.get_run_by_id(context.run.run_id)
    if run is not None and run.is_finished:
        # A broker's second delivery of a step whose run already ended (its worker seemed lost): the file
        # was loaded, or refused, by the first; loading it again would only supersede it with itself.
        raise dg.Failure(
            description=f"run {run.run_id} already ended ({run.status.value}): not loading again"
        )
    path = (
        Path(config.source).expanduser().absolute()
        if config.source
        else _source_file(source, context.partition_key)
    )
    outcome = load(
        context, landing.admit(path), source, load_rules, warehouse, follow_links=not landing.holds(path)
    )
    yield from load_results(outcome)


def load(
    context,
    path: Path,
    source: SourceFile,
    load_rules: LoadRules,
    warehouse: Warehouse,
    follow_links: bool = True,
) -> LoadOutcome:
    """Load one file into the history by the run's resources, as the load `<file key>@<run id>`."""
    return load_file(
        path,
        warehouse.lake(),
        load_id=f"{file_key(path)}@{context.run.run_id}",
        run_id=context.run.run_id,
        rules=load_rules.rules(),
        mappings=source.known_mappings(),
        tables=source.known_tables(),
        id_key=source.id_key(),
        memory_limit=warehouse.memory_limit,
        follow_links=follow_links,
    )


def _source_file(source: SourceFile, key: str) -> Path:
    matches = [path for path in source.files() if file_key(path) == key]
    if not matches:
        raise dg.Failure(description=f"no file of the source {source.resolve()} has the key {key!r}")
    return matches[0]


def _verdicts(outcome: LoadOutcome) -> list[tuple[Gate, object]]:
    gates = [(RAW_GATE, outcome.raw_gate)]
    if outcome.staging_gate is not None:
        gates.append((STAGING_GATE, outcome.staging_gate))
    return gates


def _facts(outcome: LoadOutcome) -> dict[str, dict[str, object]]:
    """Each loaded asset's metadata."""
    record = outcome.record
    facts = {
        "load_id": record.load_id,
        "source_file": dg.MetadataValue.path(record.source_file),
        "source_sha256": record.sha256,
        "source_format": record.mapping,
        "source_encoding": record.encoding,
        "supersedes": outcome.superseded.load_id if outcome.superseded else "nothing: a new file",
    }
    by_rule = outcome.cleaning.rejected_by_rule if outcome.cleaning else {}
    return {
        "raw_transactions": {**facts, "dagster/row_count": record.lines},
        "clean_transactions": {**facts, "dagster/row_count": record.clean},
        "rejected_rows": {
            **facts,
            "dagster/row_count": record.rejected,
            "rejected_by_rule": dg.MetadataValue.json(by_rule),
        },
    }


def refusal_message(outcome: LoadOutcome) -> str:
    gate = outcome.staging_gate if outcome.refused_at == "staging" else outcome.raw_gate
    return (
        f"{outcome.record.source_file} refused: {gate.message()}; its lines are kept in {outcome.kept}; the "
        "history keeps its last accepted version of this file"
    )


def load_results(outcome: LoadOutcome):
    """A load's gate verdicts and materializations, from its own step; a refused load ends the step."""
    for gate, verdict in _verdicts(outcome):
        yield gate.check_result(verdict)
    if not outcome.accepted:
        raise dg.Failure(description=refusal_message(outcome), allow_retries=False)
    for asset, metadata in _facts(outcome).items():
        yield dg.MaterializeResult(asset_key=asset, metadata=metadata)


def load_events(outcome: LoadOutcome) -> list[dg.AssetCheckEvaluation | dg.AssetMaterialization]:
    """The same, as events another step logs for the file's partition (a load made by the publication)."""
    key = outcome.record.key
    events: list = [
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(gate.asset),
            check_name=result.check_name,
            passed=result.passed,
            severity=result.severity,
            description=result.description,
            metadata=result.metadata,
            partition=key,
        )
        for gate, verdict in _verdicts(outcome)
        for result in [gate.check_result(verdict)]
    ]
    if outcome.accepted:
        events += [
            dg.AssetMaterialization(asset_key=asset, partition=key, metadata=metadata)
            for asset, metadata in _facts(outcome).items()
        ]
    return events
