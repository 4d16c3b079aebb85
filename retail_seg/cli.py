"""Command line: `python -m retail_seg synthesize | run | audit customer ID | erase customer ID | cluster up`.

Each way a command can fail has its own exit code and a plain sentence, so a scheduler (and a person)
can tell "try again later" from "fix the file" from "free some disk". The codes follow sysexits.h.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from retail_seg import settings
from retail_seg.core.sources import NO_FILES, NOT_FOUND

SOURCE_TAG = "retail_seg/source"


class Exit(IntEnum):
    OK = 0
    FAILED = 1  # the run failed: a gate refused the data, or a step failed
    DATA_REFUSED = 65  # EX_DATAERR: the run published, without a file whose load was refused
    NOT_FOUND = 66  # EX_NOINPUT: no such source, warehouse or customer
    DISK_FULL = 74  # EX_IOERR: no space left where the warehouse or the instance writes
    BUSY = 75  # EX_TEMPFAIL: another process holds the warehouse; try again when it is done
    READ_ONLY = 77  # EX_NOPERM: a folder it must write is read-only or not writable


# What the operating system and DuckDB say, anywhere in an error's chain, for each kind of failure.
_SIGNS = (
    (Exit.DISK_FULL, os.strerror(errno.ENOSPC)),
    (Exit.DISK_FULL, "database or disk is full"),  # SQLite's words, for the Dagster instance
    (Exit.READ_ONLY, os.strerror(errno.EROFS)),
    (Exit.READ_ONLY, os.strerror(errno.EACCES)),
    (Exit.READ_ONLY, "readonly database"),  # SQLite's words
    (Exit.BUSY, "Could not set lock"),
    (Exit.NOT_FOUND, NOT_FOUND),
    (Exit.NOT_FOUND, NO_FILES),
)
_SENTENCES = {
    Exit.DISK_FULL: "the disk is full: free some space where the warehouse and DAGSTER_HOME live, then run "
    "again",
    Exit.READ_ONLY: "cannot write: a folder the run writes (the warehouse's, the report's or DAGSTER_HOME) "
    "is read-only or not writable by this user",
    Exit.BUSY: "the warehouse is busy: another process holds it; try again when it is done",
    Exit.NOT_FOUND: "not found",
}


def classify(text: str) -> Exit | None:
    """The kind of failure an error's text shows, if it is one with a code of its own."""
    for code, sign in _SIGNS:
        if sign.lower() in text.lower():
            return code
    return None


def _holder(text: str) -> str:
    """Who DuckDB says holds a file, when it says."""
    found = re.search(r"Conflicting lock is held in (\S+) \(PID (\d+)\)", text)
    return f" (held by {found.group(1)}, pid {found.group(2)})" if found else ""


def _synthesize(args: argparse.Namespace) -> int:
    from retail_seg.core.synthetic import write_synthetic

    transactions, planted = write_synthetic(Path(args.out), customers=args.customers, seed=args.seed)
    print(f"wrote {transactions} and {planted}")
    return Exit.OK


def _instance_home() -> Path:
    """$DAGSTER_HOME, or the project's `data/.dagster` with its instance settings, made on first use."""
    home = Path(settings.DAGSTER_HOME.value())
    os.environ[settings.DAGSTER_HOME.variable] = str(home)
    if not (home / "dagster.yaml").exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(settings.instance_settings(), home / "dagster.yaml")
    return home


def _chain(error) -> str:
    """An error's message and those of every error under it, the root cause last."""
    messages = []
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause or error.context
    return "\n".join(messages)


def _failures(result) -> list[tuple[str, str, str]]:
    """(where, what went wrong in a sentence, the whole error chain) for each failure of a run: its
    steps, and what failed before any step (a resource that could not start)."""
    failures, run_level = [], []
    for event in result.all_events:
        data = event.event_specific_data
        if event.is_step_failure:
            chain = _chain(data.error)
            reason = data.user_failure_data.description if data.user_failure_data else None
            failures.append((f"step {event.step_key}", reason or chain.splitlines()[-1], chain))
        elif getattr(data, "error", None) is not None and not event.step_key:
            chain = _chain(data.error)
            run_level.append(("the run", chain.splitlines()[-1], chain))
    return failures or run_level


def _refused_files(result) -> list[str]:
    """What the history's `every_file_loaded` check says was refused, when it failed."""
    return [
        evaluation.description
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "every_file_loaded" and not evaluation.passed
    ]


@dataclass(frozen=True)
class LoadRun:
    """One file's load run, as `python -m retail_seg run` saw it end."""

    path: str
    run_id: str
    accepted: bool
    refused: bool  # a gate refused the file (else a failure is a crash: a worker, the broker, a bug)
    why: str


def _load_one(run_id: str) -> LoadRun:
    """Execute the load run `run_id` from this process, its step placed by the executor (a Celery worker).
    This process owns the run: if it dies, the next run or the dead_runs sensor marks the run failed."""
    import dagster as dg
    from dagster._core.execution.api import execute_run

    from retail_seg.core.publication import Owner
    from retail_seg.definitions import load_files_job

    with dg.DagsterInstance.get() as instance:
        instance.add_run_tags(run_id, Owner.this_process(run_id).as_tags())
        result = execute_run(dg.reconstructable(load_files_job), instance.get_run_by_id(run_id), instance)
        refused = any(not e.passed for e in result.get_asset_check_evaluations())
        why = "; ".join(reason for _, reason, _ in _failures(result))
        return LoadRun(result.dagster_run.tags[SOURCE_TAG], run_id, result.success, refused, why)


def _load_pending(instance, parallel: int) -> list[LoadRun]:
    """Load the source's files the history does not hold as they are now, `parallel` runs at a time, each
    its own run of `load_files` (and partition); the publication that follows finds them loaded."""
    import concurrent.futures
    import multiprocessing

    import dagster as dg

    from retail_seg.core.lake import Lake, file_key
    from retail_seg.core.loads import pending_files
    from retail_seg.core.sources import source_paths
    from retail_seg.definitions import load_files_job
    from retail_seg.defs.ingest import SOURCE_FILES

    lake = Lake(Path(settings.WAREHOUSE.value()))
    pending = pending_files(lake, source_paths(Path(settings.SOURCE.value()))).files
    if not pending:
        return []
    instance.add_dynamic_partitions(SOURCE_FILES.name, [file_key(p) for p in pending])
    job = dg.reconstructable(load_files_job).get_definition()
    runs = [
        instance.create_run_for_job(
            job_def=job,
            run_config={"ops": {"file_load": {"config": {"source": str(path)}}}},
            tags={**job.tags, "dagster/partition": file_key(path), SOURCE_TAG: str(path)},
        ).run_id
        for path in pending
    ]
    print(f"loading {len(pending)} file(s), {parallel} at a time, each a run on the workers")
    # Fresh processes (not forks of this one): each opens its own connection to the instance's storage.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(min(parallel, len(runs)), mp_context=context) as pool:
        loads = list(pool.map(_load_one, runs))
    for load in loads:
        told = "loaded" if load.accepted else ("REFUSED: " if load.refused else "FAILED: ") + load.why
        print(f"  {Path(load.path).name}: {told} (run {load.run_id})")
    return loads


def _load_on_workers(instance) -> Exit | None:
    """The pending loads, as runs on the workers; an exit code when the run must stop before publishing (the
    instance is not shared, or a load failed other than by a gate's refusal)."""
    if "sqlite" in type(instance.run_storage).__name__.lower():
        print(
            f"{settings.EXECUTOR.variable}=celery needs Dagster's instance on Postgres, shared with the "
            f"workers; {instance.root_directory} keeps it in SQLite: set {settings.POSTGRES_URL.variable} "
            "and a DAGSTER_HOME of its own (make up writes both into data/.cluster/env)",
            file=sys.stderr,
        )
        return Exit.FAILED
    loads = _load_pending(instance, _parallel_loads())
    crashed = [load for load in loads if not load.accepted and not load.refused]
    for load in crashed:
        print(f"the load of {load.path} failed (not refused by a gate): {load.why}", file=sys.stderr)
    if crashed:
        print("nothing published changed: fix what failed and run again; the accepted loads are kept")
        return Exit.FAILED
    return None


def _parallel_loads() -> int:
    value = settings.PARALLEL_LOADS.value()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{settings.PARALLEL_LOADS.variable}: {value!r} is not a number of loads")
    return int(value)


def _run(args: argparse.Namespace) -> int:
    import dagster as dg

    from retail_seg.definitions import build_definitions, segmentation_job
    from retail_seg.defs.distributed import CELERY, executor_name
    from retail_seg.defs.runs import release_dead_runs

    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if args.as_of:
        run_config["ops"] = {"customer_features": {"config": {"as_of": args.as_of}}}
    job = build_definitions().resolve_job_def(segmentation_job.name)
    _instance_home()
    publications = _publications()
    with dg.DagsterInstance.get() as instance:
        release_dead_runs(instance, print)
        if executor_name() == CELERY:  # the loads on the workers first, side by side; then one publication
            failed = _load_on_workers(instance)
            if failed is not None:
                return failed
        result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    materialized = sorted(
        event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
    )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    print(f"materialized: {', '.join(materialized) or 'nothing'}")
    if result.success:
        print(f"report: {Path(settings.REPORTS.value()) / 'index.html'}")
        refused = _refused_files(result)
        for refusal in refused:
            print(f"published without a refused file: {refusal}", file=sys.stderr)
        return Exit.DATA_REFUSED if refused else Exit.OK
    failures = _failures(result)
    for where, reason, _ in failures:
        print(f"{where} failed: {reason}")
    chains = "\n".join(chain for _, _, chain in failures)
    kind = classify(chains)
    if kind not in (None, Exit.NOT_FOUND):
        print(_SENTENCES[kind] + _holder(chains), file=sys.stderr)
    if publications.current_run() == result.run_id:
        print(f"the run was published before it failed: {publications.current} is {result.run_id}")
    else:
        print("nothing published changed: the warehouse and the report are the last good run's")
    return kind or Exit.FAILED


def _audit_customer(args: argparse.Namespace) -> int:
    import duckdb
    import pandas as pd

    from retail_seg.core.audit import NoHistoryError, customer_history

    warehouse = Path(args.warehouse or settings.WAREHOUSE.value())
    if not warehouse.is_file():
        print(f"{warehouse}: no warehouse here; run the pipeline first (make run)", file=sys.stderr)
        return Exit.NOT_FOUND
    try:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            history = customer_history(conn, args.customer_id)
    except NoHistoryError as error:
        print(f"{warehouse}: {error}", file=sys.stderr)
        return Exit.NOT_FOUND
    except duckdb.IOException as error:
        if classify(str(error)) != Exit.BUSY:
            raise
        print(f"{warehouse}: {_SENTENCES[Exit.BUSY]}{_holder(str(error))}", file=sys.stderr)
        return Exit.BUSY
    if args.as_of:
        on = pd.Timestamp(dt.date.fromisoformat(args.as_of) + dt.timedelta(days=1))
        history = history[history["recorded_at"] < on].tail(1)
    if history.empty:
        when = f" published by {args.as_of}" if args.as_of else ""
        print(f"customer {args.customer_id}: not in any recorded run{when} of {warehouse}", file=sys.stderr)
        return Exit.NOT_FOUND
    runs = [_explained(row) for row in history.to_dict("records")]
    if args.format == "json":
        print(json.dumps({"customer_id": args.customer_id, "runs": runs}, indent=2, default=str))
        return Exit.OK
    print(f"customer {args.customer_id}: {len(runs)} recorded run(s) in {warehouse}")
    for run in runs:
        print(_told(run))
    return Exit.OK


def _publications():
    from retail_seg.core.publication import Publications

    return Publications(
        Path(settings.WAREHOUSE.value()), Path(settings.REPORTS.value()), settings.exports_folder()
    )


def _stored_ids(conn, given: str) -> list[str]:
    """The forms the customer may be stored under: the id as given and, where personal keys (emails) are
    hashed, its keyed hash."""
    from retail_seg.core.parsing import hashed_key_sql

    forms = [given]
    key = settings.ID_KEY.value()
    if key != settings.ID_KEY.default or Path(key).is_file():
        [(hashed,)] = conn.execute(
            f"SELECT {hashed_key_sql('$raw')}", {"raw": given, "id_key": settings.id_key()}
        ).fetchall()
        forms.append(hashed)
    return forms


def _erase_customer(args: argparse.Namespace) -> int:
    import duckdb

    from retail_seg.core.erasure import ErasureIncomplete, compact, erase_customer, locate
    from retail_seg.core.lake import Lake
    from retail_seg.core.publication import Owner

    publications = _publications()
    if not args.customer_id.strip():
        print("erase customer: the customer id is empty", file=sys.stderr)
        return Exit.NOT_FOUND
    if publications.live_database() is None:
        print(f"{publications.warehouse}: no warehouse here; nothing to erase", file=sys.stderr)
        return Exit.NOT_FOUND
    erasure_id = f"erasure-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
    lock = publications.lock(Owner.this_process(erasure_id))
    lock.acquire(on_wait=print)
    try:
        workspace = publications.begin(erasure_id)
        try:
            with duckdb.connect(str(workspace.database)) as conn:
                lake = Lake(publications.warehouse)
                stored = [
                    form
                    for form in _stored_ids(conn, args.customer_id)
                    if locate(conn, form, lake, workspace.exports)
                ]
                erasures = [
                    erase_customer(conn, form, lake, workspace.exports, dt.datetime.now(dt.UTC))
                    for form in stored
                ]
            if not stored:
                publications.discard(workspace)
                print(
                    f"customer {args.customer_id}: not in {publications.warehouse}; nothing erased",
                    file=sys.stderr,
                )
                return Exit.NOT_FOUND
            compact(workspace.database)
            publications.publish(workspace, log=print)
        except ErasureIncomplete as error:
            publications.discard(workspace)
            print(f"customer {args.customer_id}: not erased: {error}", file=sys.stderr)
            return Exit.FAILED
        except BaseException:
            publications.discard(workspace)
            raise
    finally:
        lock.release()
    for erasure in erasures:
        rows = sum(erasure.rows_by_table.values())
        print(
            f"erased customer {args.customer_id}: {rows} row(s) from {len(erasure.rows_by_table)} table(s), "
            f"{erasure.lake_lines} line(s) from {erasure.lake_files} lake file(s), "
            f"{erasure.export_files} export file(s) rewritten; recorded as erasure {erasure.erasure_id} in "
            "audit.erasures (without the id)"
        )
    print(
        "source files outside the warehouse (the landing folder, RETAIL_SEG_SOURCE) are not changed: delete "
        "or correct them there too, or a corrected file loads the customer again"
    )
    return Exit.OK


def _cluster(args: argparse.Namespace) -> int:
    from retail_seg import cluster

    folder = Path(args.folder)
    if args.action == "down":
        stopped = cluster.down(folder)
        print(f"stopped {', '.join(stopped)}" if stopped else f"nothing running from {folder}")
        return Exit.OK
    try:
        servers = cluster.up(folder, args.workers)
    # A server or initdb that stopped, a wait that gave up (TimeoutError is an OSError), no `postgres` user.
    except (cluster.ServerMissing, cluster.ServerExited, OSError, LookupError) as error:
        print(f"the distributed profile did not start; nothing of it is running: {error}", file=sys.stderr)
        return Exit.FAILED
    print(
        f"redis on 127.0.0.1:{servers.redis_port}, postgres on 127.0.0.1:{servers.postgres_port}, "
        f"{args.workers} Celery worker(s); logs in {folder}"
    )
    print(f"to use it: . {folder / 'env'} && python -m retail_seg run (or make ui); to stop it: make down")
    return Exit.OK


def _explained(row: dict) -> dict:
    """One recorded run of a customer, as the audit command tells it."""
    versions = json.loads(row["code_versions"]) if row.get("code_versions") else {}
    return {
        "run_id": row["run_id"],
        "published": str(row["recorded_at"]),
        "as_of": str(row["as_of"]),
        "segment_id": row.get("segment_id"),
        "segment": row["segment"],
        "label": row["label"],
        "method": row["method"],
        "k": row["k"],
        "rfm_segment": row["rfm_segment"],
        "features": {c: row[c] for c in ("recency_days", "frequency", "monetary")},
        "distance_to_centre": row.get("distance_to_centre"),
        "distance_to_nearest_other": row.get("distance_to_nearest_other"),
        "p_alive": row.get("p_alive"),
        "churn_risk": row.get("churn_risk"),
        "clv": row.get("clv"),
        "source": row["source_file"],
        "source_sha256": row["source_sha256"],
        "code_versions": {k: v for k, v in versions.items() if k in _EXPLAINING},
    }


# The assets whose code decides a customer's segment: the versions an auditor compares between runs.
_EXPLAINING = (
    "customer_features",
    "model_features",
    "customer_segments",
    "customer_value",
    "segment_profiles",
)


def _number(value, spec: str) -> str:
    return "–" if value is None or value != value else format(value, spec)


def _told(run: dict) -> str:
    features = run["features"]
    versions = ", ".join(f"{k} {v}" for k, v in run["code_versions"].items())
    return "\n".join(
        [
            f"- run {run['run_id']} (published {run['published']}, features as of {run['as_of']})",
            f"  segment {run['segment_id'] or '–'} '{run['segment']}' ({run['label']}; {run['method']}, "
            f"k = {run['k']}; RFM segment {run['rfm_segment']})",
            f"  placed by: last purchase {features['recency_days']} days before, {features['frequency']} "
            f"invoices, net spend {_number(features['monetary'], ',.2f')}",
            f"  distance to its segment's centre {_number(run['distance_to_centre'], '.2f')}, to the nearest "
            f"other {_number(run['distance_to_nearest_other'], '.2f')} (model space)",
            f"  churn risk {_number(run['churn_risk'], '.0%')}, lifetime value {_number(run['clv'], ',.2f')}",
            f"  source {run['source']} (SHA-256 {run['source_sha256']})",
            f"  code versions: {versions}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retail_seg",
        description=__doc__,
        epilog="exit codes: "
        + ", ".join(f"{code.value} {code.name.lower().replace('_', ' ')}" for code in Exit),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    customer.add_argument(
        "--as-of", help="only the assignment in force on this ISO date (the last run published by then)"
    )
    customer.add_argument("--format", choices=("text", "json"), default="text", help="json for tools")
    customer.set_defaults(handler=_audit_customer)

    erase = commands.add_parser("erase", help="remove personal data (the right to erasure)")
    erased = erase.add_subparsers(dest="subject", required=True)
    erased_customer = erased.add_parser(
        "customer", help="remove one customer from every table, lake partition, history and export"
    )
    erased_customer.add_argument(
        "customer_id", help="the id as the warehouse holds it, or the email it hashes"
    )
    erased_customer.set_defaults(handler=_erase_customer)

    clustered = commands.add_parser(
        "cluster", help="the distributed profile on this host: Redis, Postgres and Celery workers"
    )
    clustered.add_argument("action", choices=("up", "down"))
    clustered.add_argument("--workers", type=int, default=2, help="Celery worker processes (up)")
    clustered.add_argument(
        "--folder", default=str(settings.DATA / ".cluster"), help="servers' data, logs and `env`"
    )
    clustered.set_defaults(handler=_cluster)

    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except Exception as error:  # outside any step: the Dagster instance's storage, say
        kind = classify(f"{error}\n{error.__cause__}\n{error.__context__}")
        if kind is None:
            raise
        print(f"{_SENTENCES[kind]}: {str(error).splitlines()[0]}", file=sys.stderr)
        return kind
