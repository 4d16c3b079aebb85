"""Benchmark: RFM feature build and whole pipeline against bare DuckDB, pandas and pymc-marketing.

    make bench                      # 1M and 10M lines
    make bench SIZES=1000000        # one size

For each size it generates UCI-shaped lines (about 10 per invoice, 25 per customer, a fifth without a
customer, 2% cancelled) as Parquet, then measures, each in a process of its own, the wall time and
peak resident memory of: a bare DuckDB group-by over the file (the hardware's limit), this project's
build from file to customer features (raw, staging, features), a pandas groupby (what a notebook
does), pymc-marketing's `rfm_summary` where it installs, and `python -m retail_seg run` end to end
with every asset and check, with the time of each step. It writes bench/results/benchmark.md and
bench/results/benchmark.png and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PYMC_VENV = BENCH / ".venv-pymc"

GENERATE = """
COPY (
    WITH lines AS (SELECT range AS i, hash(range // 10) % 50 = 0 AS cancelled FROM range($lines))
    SELECT
        CASE WHEN cancelled THEN 'C' ELSE '' END || CAST(500000 + i // 10 AS VARCHAR) AS InvoiceNo,
        CAST(20000 + hash(i) % 4000 AS VARCHAR) AS StockCode,
        'PRODUCT ' || CAST(hash(i) % 4000 AS VARCHAR) AS Description,
        (CASE WHEN cancelled THEN -1 ELSE 1 END) * CAST(1 + hash(i * 7) % 12 AS BIGINT) AS Quantity,
        strftime(TIMESTAMP '2010-12-01 08:00:00'
                 + to_seconds(CAST((i // 10) * 31536000.0 / ($lines // 10) AS BIGINT)), '%Y-%m-%d %H:%M:%S')
            AS InvoiceDate,
        round(0.5 + (hash(i) % 4000) / 400.0, 2) AS UnitPrice,
        CASE WHEN hash(i // 10 + 7) % 5 = 0 THEN NULL
             ELSE CAST(12000 + hash((i // 10) * 31) % ($lines // 25) AS DOUBLE) END AS CustomerID,
        'United Kingdom' AS Country
    FROM lines
) TO '{path}' (FORMAT parquet)
"""


def generate(lines: int) -> Path:
    """UCI-shaped lines as Parquet, made once per size and kept between benchmark runs."""
    import duckdb

    path = RESULTS / "data" / f"lines_{lines}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        duckdb.connect().execute(GENERATE.format(path=path), {"lines": lines})
    return path


def measured(command: list[str], env: dict | None = None, cwd: Path = REPO) -> dict:
    """Run a command; its wall seconds, peak resident memory (GiB) and what it printed last."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {"seconds": seconds, "peak_gib": usage.ru_maxrss / 2**20, "output": output, "last": last}


def pymc_python() -> Path | None:
    """pymc-marketing in an environment of its own (it pins its own numerical stack), made on first use."""
    python = PYMC_VENV / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(PYMC_VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "pymc-marketing", "pyarrow"],
                check=True,
                timeout=1800,
            )
        except (subprocess.SubprocessError, OSError) as error:
            print(f"pymc-marketing is not installable here ({error}); its column stays empty")
            shutil.rmtree(PYMC_VENV, ignore_errors=True)
            return None
    return python


def task(method: str, source: Path, python: Path = Path(sys.executable)) -> dict:
    workdir = RESULTS / "work" / method
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    result = measured([str(python), str(BENCH / "measure.py"), method, str(source), str(workdir)])
    inner = json.loads(result["last"])
    return {
        "seconds": result["seconds"],
        "inner_seconds": inner["seconds"],
        "peak_gib": result["peak_gib"],
        "customers": inner["customers"],
    }


def pipeline(source: Path) -> dict:
    """`python -m retail_seg run` on the file, as `make run` does, and the seconds of each step."""
    workdir = RESULTS / "work" / "pipeline"
    shutil.rmtree(workdir, ignore_errors=True)
    home = workdir / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "retail_seg" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RETAIL_SEG_SOURCE": str(source),
        "RETAIL_SEG_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        "RETAIL_SEG_REPORTS": str(workdir / "reports"),
        "RETAIL_SEG_INCOMING": str(workdir / "incoming"),
        "RETAIL_SEG_MEMORY_LIMIT": "4GB",
        "GX_ANALYTICS_ENABLED": "false",
    }
    result = measured([sys.executable, "-m", "retail_seg", "run"], env=env)
    steps = json.loads(measured([sys.executable, str(BENCH / "steps.py")], env=env)["last"])
    return {"seconds": result["seconds"], "peak_gib": result["peak_gib"], "steps": steps}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}×" if a and b else "–"


def report(results: dict[int, dict]) -> str:
    lines = [
        "| lines | customers | method | seconds | peak GiB | time vs bare DuckDB | project faster by | "
        "project memory share |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, found in results.items():
        bare, own = found["bare_duckdb"], found["project"]
        for method in ("bare_duckdb", "project", "pandas", "pymc_marketing"):
            row = found.get(method)
            if row is None:
                lines.append(f"| {size:,} | | {method} | not installable | | | | |")
                continue
            faster = (
                ratio(row["inner_seconds"], own["inner_seconds"])
                if method in ("pandas", "pymc_marketing")
                else ""
            )
            share = (
                f"{own['peak_gib'] / row['peak_gib']:.0%}" if method in ("pandas", "pymc_marketing") else ""
            )
            versus_bare = ratio(row["inner_seconds"], bare["inner_seconds"])
            lines.append(
                f"| {size:,} | {row['customers']:,} | {method} | {row['inner_seconds']:.2f} | "
                f"{row['peak_gib']:.2f} | {versus_bare} | {faster} | {share} |"
            )
        run = found["pipeline"]
        lines.append(
            f"| {size:,} | | whole pipeline (every asset and check, Dagster included) | "
            f"{run['seconds']:.1f} | {run['peak_gib']:.2f} | | | |"
        )
    lines += [
        "",
        "Where the pipeline's time goes (seconds per step):",
        "",
        "| step | " + " | ".join(f"{size:,} lines" for size in results) + " |",
        "| --- | " + " | ".join("---:" for _ in results) + " |",
    ]
    steps = list(next(iter(results.values()))["pipeline"]["steps"])
    for step in steps:
        cells = " | ".join(f"{found['pipeline']['steps'].get(step, 0):.2f}" for found in results.values())
        lines.append(f"| {step} | {cells} |")
    return "\n".join(lines)


def plot(results: dict[int, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    methods = ("bare_duckdb", "project", "pandas", "pymc_marketing")
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    time_ax, memory_ax = fig.subplots(1, 2)
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        xs = [j + i * width for j in range(len(results))]
        found = [r.get(method) for r in results.values()]
        time_ax.bar(xs, [f["inner_seconds"] if f else 0 for f in found], width, label=method)
        memory_ax.bar(xs, [f["peak_gib"] if f else 0 for f in found], width, label=method)
    for ax, label in ((time_ax, "wall seconds"), (memory_ax, "peak resident memory (GiB)")):
        ax.set_xticks([j + 0.3 for j in range(len(results))], labels=[f"{s:,} lines" for s in results])
        ax.set_ylabel(label)
        ax.legend()
    time_ax.set_title("RFM feature build: time")
    memory_ax.set_title("RFM feature build: peak memory")
    fig.savefig(RESULTS / "benchmark.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--no-pymc", action="store_true", help="skip pymc-marketing")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    pymc = None if args.no_pymc else pymc_python()
    results: dict[int, dict] = {}
    for size in args.sizes:
        source = generate(size)
        found = {method: task(method, source) for method in ("bare_duckdb", "project", "pandas")}
        if pymc:
            found["pymc_marketing"] = task("pymc_marketing", source, python=pymc)
        found["pipeline"] = pipeline(source)
        results[size] = found
        print(f"{size:,} lines done", flush=True)
    table = report(results) + (
        "\n\nSeconds of work exclude interpreter start and imports; peak memory is the whole process's."
    )
    (RESULTS / "benchmark.md").write_text(table + "\n")
    plot(results)
    print(table)
    print(f"\nwritten: {RESULTS / 'benchmark.md'}, {RESULTS / 'benchmark.png'}")


if __name__ == "__main__":
    main()
