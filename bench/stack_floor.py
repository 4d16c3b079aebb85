"""The publication job with every asset and check doing nothing, run as `python -m retail_seg run` runs it.

The same graph (every asset, every check, the same dependencies), in one process with everything a run
loads (the project's definitions, hence Dagster, DuckDB, pandas, scikit-learn, SciPy and matplotlib; and
Great Expectations with its context), executed in process on the instance in $DAGSTER_HOME. What is left
is what the stack costs a run before any work: imports, the instance, and Dagster running the steps and
recording their events. bench/run.py times this process whole, as it times the pipeline.

It leaves out what a real run also pays around its steps, so it is a floor, not an estimate: no
resources are set up (warehouse, source, rules), no run config (its logs at Dagster's default level), no
concurrency pools claimed, no dead runs looked for.
"""

import dagster as dg

from retail_seg.core.expectations import gx_context
from retail_seg.definitions import build_definitions, segmentation_job


def idle(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """An asset with `asset`'s name, keys, dependencies and checks whose step only reports success."""
    specs, checks = list(asset.specs), list(asset.check_specs)

    def step(context: dg.AssetExecutionContext):
        for check in checks:
            yield dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key)

    return dg.multi_asset(name=asset.node_def.name, specs=specs, check_specs=checks)(step)


def main() -> None:
    gx_context()  # made once per process by the first gate of a run
    job = build_definitions().resolve_job_def(segmentation_job.name)
    graph = job.asset_layer.asset_graph
    assets = [a for a in graph.assets_defs if a.is_executable]
    idle_job = dg.define_asset_job("idle", selection=dg.AssetSelection.all())
    defs = dg.Definitions(assets=[idle(a) for a in assets], jobs=[idle_job], executor=dg.in_process_executor)
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("idle").execute_in_process(instance=instance)
    steps = len(result.get_step_success_events())
    checks = sum(len(list(a.check_specs)) for a in assets)
    print(f"{steps} steps and {checks} checks, each doing nothing: {'ok' if result.success else 'FAILED'}")
    if not result.success:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
