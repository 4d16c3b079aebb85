"""Command line: `python -m retail_seg synthesize | run | audit customer ID`."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from retail_seg import settings


def _synthesize(args: argparse.Namespace) -> int:
    from retail_seg.core.synthetic import write_synthetic

    transactions, planted = write_synthetic(Path(args.out), customers=args.customers, seed=args.seed)
    print(f"wrote {transactions} and {planted}")
    return 0


def _instance_home() -> Path:
    """$DAGSTER_HOME, or the project's `data/.dagster` with its instance settings, made on first use."""
    home = Path(settings.DAGSTER_HOME.value())
    os.environ[settings.DAGSTER_HOME.variable] = str(home)
    if not (home / "dagster.yaml").exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(settings.INSTANCE_SETTINGS, home / "dagster.yaml")
    return home


def _run(args: argparse.Namespace) -> int:
    import dagster as dg

    from retail_seg.definitions import build_definitions, segmentation_job

    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if args.as_of:
        run_config["ops"] = {"customer_features": {"config": {"as_of": args.as_of}}}
    job = build_definitions().resolve_job_def(segmentation_job.name)
    _instance_home()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    materialized = sorted(
        event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
    )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    print(f"materialized: {', '.join(materialized) or 'nothing'}")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                failure = event.step_failure_data
                reason = failure.user_failure_data.description if failure.user_failure_data else None
                print(f"step {event.step_key} failed: {reason or failure.error.message.strip()}")
        return 1
    report = Path(settings.REPORTS.value()) / "index.html"
    print(f"report: {report}")
    return 0


def _audit_customer(args: argparse.Namespace) -> int:
    import duckdb
    import pandas as pd

    from retail_seg.core.audit import NoHistoryError, customer_history

    warehouse = Path(args.warehouse or settings.WAREHOUSE.value())
    if not warehouse.is_file():
        print(f"{warehouse}: no warehouse here; run the pipeline first (make run)", file=sys.stderr)
        return 2
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        try:
            history = customer_history(conn, args.customer_id)
        except NoHistoryError as error:
            print(f"{warehouse}: {error}", file=sys.stderr)
            return 2
    if history.empty:
        print(f"customer {args.customer_id}: not in any recorded run of {warehouse}", file=sys.stderr)
        return 1
    print(f"customer {args.customer_id}: {len(history)} recorded run(s) in {warehouse}")
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(history.drop(columns="customer_id").to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retail_seg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synthesize = commands.add_parser("synthesize", help="write the seeded default data set")
    synthesize.add_argument("--out", default=str(settings.DEFAULT_SOURCE.parent), help="output folder")
    synthesize.add_argument("--customers", type=int, default=5000)
    synthesize.add_argument("--seed", type=int, default=20251201)
    synthesize.set_defaults(handler=_synthesize)

    run = commands.add_parser("run", help="materialize every asset (settings: the RETAIL_SEG_* variables)")
    run.add_argument("--as-of", help="measure features at this ISO date instead of after the latest line")
    run.set_defaults(handler=_run)

    audit = commands.add_parser("audit", help="look up the audit history")
    audited = audit.add_subparsers(dest="subject", required=True)
    customer = audited.add_parser("customer", help="a customer's segment in every recorded run, and why")
    customer.add_argument("customer_id")
    customer.add_argument("--warehouse", help="warehouse file (default: $RETAIL_SEG_WAREHOUSE)")
    customer.set_defaults(handler=_audit_customer)

    args = parser.parse_args(argv)
    return args.handler(args)
