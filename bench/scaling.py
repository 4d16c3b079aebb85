"""Scaling: a many-file history built by the distributed profile with 1 and with 2 Celery workers.

    python bench/scaling.py [--files 16] [--lines-per-file 250000]

Starts Redis and Postgres from the machine's packages (as `python -m retail_seg cluster up` does), then
for each worker count runs `python -m retail_seg run` over the same files into a fresh warehouse and
instance, and reads from the instance when each load's step ran and on which worker. It prints the
measurements and a projection of hours per billion lines by worker count: the loads divided among the
workers, plus the publication, which stays serial (one warehouse writer), in the sum.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from retail_seg import cluster  # noqa: E402

RESULTS = BENCH / "results"
WORKER_COUNTS = (1, 2)
PROJECTED_WORKERS = (1, 2, 4, 8, 16, 32, 64)
BILLION = 1_000_000_000


def history(files: int, lines_per_file: int) -> Path:
    """`files` UCI-shaped Parquet exports of `lines_per_file` lines each (consecutive invoices), made once."""
    import duckdb
    from run import GENERATE

    folder = RESULTS / "data" / f"history_{files}x{lines_per_file}"
    if len(list(folder.glob("*.parquet"))) == files:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    whole = folder.parent / f"{folder.name}.all.parquet"
    with duckdb.connect() as conn:
        conn.execute(GENERATE.format(path=whole), {"lines": files * lines_per_file})
        for n in range(files):
            conn.execute(
                f"COPY (SELECT * FROM read_parquet('{whole}') LIMIT {lines_per_file} "
                f"OFFSET {n * lines_per_file}) TO '{folder / f'day_{n:03d}.parquet'}' (FORMAT parquet)"
            )
    whole.unlink()
    return folder


def _peak_gib(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in GiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _timings(env: dict[str, str]) -> dict:
    """From the instance: each load's step (worker, start, end) and the publication run's span."""
    import dagster as dg

    os.environ[cluster.POSTGRES_URL] = env[cluster.POSTGRES_URL]
    loads, publication = [], None
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for record in instance.get_run_records():
            run = record.dagster_run
            if run.job_name == "segment_customers":
                publication = (record.start_time, record.end_time)
                continue
            events = [e for e in instance.all_logs(run.run_id) if e.dagster_event]
            times = {e.dagster_event.event_type: e.timestamp for e in events if e.dagster_event.is_step_event}
            worker = next(
                e.dagster_event.event_specific_data.metadata["Celery worker"].value
                for e in events
                if "Celery worker" in (getattr(e.dagster_event.event_specific_data, "metadata", None) or {})
            )
            loads.append(
                (worker, times[dg.DagsterEventType.STEP_START], times[dg.DagsterEventType.STEP_SUCCESS])
            )
    return {"loads": loads, "publication": publication}


def measure(servers: cluster.Servers, source: Path, workers: int, scratch: Path) -> dict:
    """One distributed run over `source` with `workers` workers; its timings and the workers' memory."""
    workdir = scratch / f"workers_{workers}"
    workdir.mkdir()
    database = f"bench_{workers}"
    psql = [cluster.postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(servers.postgres_port)]
    create = [*psql, "-U", cluster.POSTGRES_USER, "-d", "postgres", "-c", f"CREATE DATABASE {database}"]
    subprocess.run(create, check=True, capture_output=True)
    broker = f"redis://127.0.0.1:{servers.redis_port}"
    env = {
        **os.environ,
        **servers.environment(),
        "DAGSTER_HOME": str(cluster.instance_home(workdir)),
        cluster.POSTGRES_URL: servers.postgres_url.rsplit("/", 1)[0] + f"/{database}",
        "RETAIL_SEG_CELERY_BROKER": f"{broker}/{2 * workers}",
        "RETAIL_SEG_CELERY_BACKEND": f"{broker}/{2 * workers + 1}",
        "RETAIL_SEG_PARALLEL_LOADS": str(2 * workers),  # one waiting behind each running load
        "RETAIL_SEG_SOURCE": str(source),
        "RETAIL_SEG_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        "RETAIL_SEG_REPORTS": str(workdir / "reports"),
        "RETAIL_SEG_INCOMING": str(workdir / "incoming"),
        "RETAIL_SEG_MEMORY_LIMIT": os.environ.get("BENCH_MEMORY_LIMIT", "2GB"),
        "GX_ANALYTICS_ENABLED": "false",
    }
    names = [f"worker{n}" for n in range(1, workers + 1)]
    processes = [cluster.start_worker(env, name, workdir / f"{name}.log") for name in names]
    try:
        cluster.wait_for_workers(env, names)
        start = time.time()
        run = subprocess.run([sys.executable, "-m", "retail_seg", "run"], cwd=REPO, env=env,
                             capture_output=True, text=True)  # fmt: skip
        seconds = time.time() - start
        if run.returncode != 0:
            raise RuntimeError(f"the run with {workers} worker(s) failed:\n{run.stdout[-3000:]}")
        memory = [_peak_gib(p.pid) for p in processes]
    finally:
        for process in processes:
            cluster.stop(process)
    timings = _timings(env)
    loads = timings["loads"]
    first, last = min(s for _, s, _ in loads), max(e for _, _, e in loads)
    published = timings["publication"]
    return {
        "workers": workers,
        "run_seconds": seconds,
        "loads_seconds": last - first,
        "load_step_seconds": sum(e - s for _, s, e in loads),
        "loads": len(loads),
        "workers_used": len({w for w, _, _ in loads}),
        "publication_seconds": published[1] - published[0],
        "worker_peak_gib": max(memory),
    }


def projection(one: dict, lines: int) -> list[str]:
    """Hours per billion lines by worker count: loads shared among the workers, the publication serial."""
    load_per_line = one["load_step_seconds"] / lines  # one worker's cost of a line's load
    publication_per_line = one["publication_seconds"] / lines
    rows = [
        "| workers | loads (h per 10⁹ lines) | publication, serial (h) | total (h) | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    serial_total = (load_per_line + publication_per_line) * BILLION / 3600
    for workers in PROJECTED_WORKERS:
        loads = load_per_line * BILLION / workers / 3600
        publication = publication_per_line * BILLION / 3600
        total = loads + publication
        rows.append(
            f"| {workers} | {loads:.2f} | {publication:.2f} | {total:.2f} | {serial_total / total:.2f}× |"
        )
    return rows


def report(measured: list[dict], files: int, lines_per_file: int) -> list[str]:
    lines = files * lines_per_file
    one = next(m for m in measured if m["workers"] == 1)
    per_line = one["load_step_seconds"] / lines * 1e6
    publication_per_line = one["publication_seconds"] / lines * 1e6
    rows = [
        f"Scaling: {files} files of {lines_per_file:,} lines ({lines:,} in all), distributed profile "
        "(Celery over Redis, instance on Postgres), on this machine's cores:",
        "",
        "| workers | run (s) | loads, first start to last end (s) | load steps summed (s) | speed-up of the "
        "loads | publication (s) | peak memory per worker (GiB) | workers that took loads |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in measured:
        rows.append(
            f"| {m['workers']} | {m['run_seconds']:.1f} | {m['loads_seconds']:.1f} | "
            f"{m['load_step_seconds']:.1f} | {one['loads_seconds'] / m['loads_seconds']:.2f}× | "
            f"{m['publication_seconds']:.1f} | {m['worker_peak_gib']:.2f} | {m['workers_used']} |"
        )
    rows += [
        "",
        f"Projection from the 1-worker run: a line's load costs {per_line:.2f} µs of one worker, a line's "
        f"share of the publication {publication_per_line:.2f} µs "
        "(serial: one warehouse writer). Loads divide among workers; the publication does not, so it bounds "
        "the speed-up. Assumes both stay linear in lines (the publication's fixed costs, segmentation and "
        "report, make its per-line share an overestimate at this size), and workers on cores of their own "
        "(here 2 cores share the workers, the run's process and the servers).",
        "",
        *projection(one, lines),
    ]
    return rows


def main(files: int = 16, lines_per_file: int = 250_000) -> list[str]:
    source = history(files, lines_per_file)
    scratch = Path(tempfile.mkdtemp(prefix="retail_seg_scaling_"))
    scratch.chmod(0o755)  # the postgres user reaches its data folder inside
    redis_port, postgres_port = cluster.free_port(), cluster.free_port()
    processes = {"redis": cluster.start_redis(scratch / "redis", redis_port)}
    try:
        processes["postgres"] = cluster.start_postgres(scratch / "postgres", postgres_port)
        servers = cluster.Servers(scratch, redis_port, postgres_port, processes)
        measured = [measure(servers, source, workers, scratch) for workers in WORKER_COUNTS]
    finally:
        for process in processes.values():
            cluster.stop(process)
        shutil.rmtree(scratch, ignore_errors=True)
    return report(measured, files, lines_per_file)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--lines-per-file", type=int, default=250_000)
    args = parser.parse_args()
    table = "\n".join(main(args.files, args.lines_per_file))
    (RESULTS / "scaling.md").write_text(table + "\n")
    print(table)
