"""One measured task, run in a process of its own so its peak memory is its own.

    python bench/measure.py METHOD SOURCE [WORKDIR]

Prints a JSON object with the task's wall seconds and what it produced. The parent reads the peak
resident memory of this process from the operating system. BENCH_MEMORY_LIMIT (default 2GB) is
DuckDB's memory limit in every DuckDB task.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

MEMORY_LIMIT = os.environ.get("BENCH_MEMORY_LIMIT", "2GB")

# The lines R, F and M are computed from: those with a customer and a price.
_KEPT = "CustomerID IS NOT NULL AND UnitPrice > 0"

# The bare DuckDB query: what the hardware can do for RFM over this file, with nothing else. It computes
# what the project's features compute for R, F and M -- timestamps parsed, money summed exactly, lines
# without a customer or a price left out -- and lands the result in a DuckDB file, as the project does.
# Like the project, it groups by invoice before customer, DuckDB's fastest way to count invoices (a
# count(DISTINCT) next to other aggregates is 15-25% slower).
BARE_DUCKDB = f"""
    CREATE TABLE rfm AS
    SELECT customer_id, max(last_purchase) AS last_purchase, count(last_purchase) AS frequency,
           sum(spend) AS monetary
    FROM (
        SELECT CustomerID AS customer_id,
               max(CAST(InvoiceDate AS TIMESTAMP)) FILTER (WHERE Quantity > 0) AS last_purchase,
               sum(Quantity * CAST(UnitPrice AS DECIMAL(18, 4))) AS spend
        FROM read_parquet(?)
        WHERE {_KEPT}
        GROUP BY CustomerID, InvoiceNo
    )
    GROUP BY customer_id
"""


def bare_duckdb(source: Path, workdir: Path) -> int:
    import duckdb

    with duckdb.connect(str(workdir / "bare.duckdb"), config={"memory_limit": MEMORY_LIMIT}) as conn:
        conn.execute(BARE_DUCKDB, [str(source)])
        return conn.execute("SELECT count(*) FROM rfm").fetchall()[0][0]


def lines_copy(source: Path, workdir: Path) -> int:
    """The file's lines written once to Parquet as they are, nothing typed or judged: the least any path
    that keeps a history's lines must pay, however it is built. The floor under file → features."""
    import duckdb

    with duckdb.connect(str(workdir / "copy.duckdb"), config={"memory_limit": MEMORY_LIMIT}) as conn:
        copy = str(workdir / "lines.parquet").replace("'", "''")
        conn.execute(f"COPY (SELECT * FROM read_parquet(?)) TO '{copy}' (FORMAT parquet)", [str(source)])
        return conn.execute(f"SELECT count(*) FROM '{copy}'").fetchall()[0][0]


# The work any load that keeps this project's rules must do, in the cheapest form we found for each part
# (a floor measured, not proven): find the lines that repeat (one hash aggregation over every column, of
# the lines the first rules leave; grouping by invoice with a list of line hashes cost the same), write the
# rejected lines with their text (here only those without a customer or a price, the fewest any rule set
# rejects), and the bare query. Nothing is typed through a mapping, no other rule is judged, and there is
# no gate, snapshot, history or copy of the clean lines.
RULES_FLOOR = f"""
    CREATE TABLE repeated AS
    SELECT hash(InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country)
               AS line
    FROM read_parquet($source)
    WHERE {_KEPT}
    GROUP BY line
    HAVING count(*) > 1
"""
REJECTED_FLOOR = f"""
    COPY (
        SELECT file_row_number + 1 AS source_row, * EXCLUDE (file_row_number)
        FROM read_parquet($source, file_row_number = true)
        WHERE NOT coalesce({_KEPT}, false)
    ) TO '{{target}}' (FORMAT parquet)
"""


def rules_floor(source: Path, workdir: Path) -> int:
    """Repeated lines found, rejected lines kept with their text, R, F and M computed: the cheapest floor
    we found under file → features for a design that keeps the rules and the rejected-rows guarantee."""
    import duckdb

    with duckdb.connect(str(workdir / "floor.duckdb"), config={"memory_limit": MEMORY_LIMIT}) as conn:
        conn.execute(RULES_FLOOR, {"source": str(source)})
        target = str(workdir / "rejected.parquet").replace("'", "''")
        conn.execute(REJECTED_FLOOR.format(target=target), {"source": str(source)})
        conn.execute(BARE_DUCKDB, [str(source)])
        return conn.execute("SELECT count(*) FROM rfm").fetchall()[0][0]


WAREHOUSE = "bench.duckdb"
# Every gate a load runs, timed apart: the Great Expectations suites are the checks, not the data path.
GATES = ("raw_gate", "staging_gate")


def _warehouse(workdir: Path):
    import duckdb

    return duckdb.connect(str(workdir / WAREHOUSE), config={"memory_limit": MEMORY_LIMIT})


def _timed_gates() -> dict[str, float]:
    """Time every gate a load calls from now on; the returned dict fills in as they run."""
    from retail_seg.core import loads

    spent = {"gate_seconds": 0.0}
    for name in GATES:
        gate = getattr(loads, name)

        def timed(*args, _gate=gate, **kwargs):
            start = time.perf_counter()
            try:
                return _gate(*args, **kwargs)
            finally:
                spent["gate_seconds"] += time.perf_counter() - start

        setattr(loads, name, timed)
    return spent


def _load_and_build(source: Path, workdir: Path, load_id: str) -> dict:
    """What a nightly run does with one new file: load it into the lake (both gates), rebuild the history
    over every accepted load, build the customer features."""
    import datetime as dt

    from retail_seg.core.features import build_customer_features
    from retail_seg.core.history import build_history
    from retail_seg.core.lake import Lake
    from retail_seg.core.loads import LoadRules, load_file
    from retail_seg.core.mappings import load_mappings

    spent = _timed_gates()
    lake = Lake(workdir / WAREHOUSE)
    outcome = load_file(
        source,
        lake,
        load_id=load_id,
        run_id="bench",
        rules=LoadRules(run_date=dt.date(2030, 1, 1)),
        mappings=load_mappings(),
        id_key=None,
        memory_limit=MEMORY_LIMIT,
    )
    assert outcome.accepted, outcome.raw_gate.message()
    with _warehouse(workdir) as conn:
        build_history(conn, lake)
        return {"customers": build_customer_features(conn).customers, **spent}


def project(source: Path, workdir: Path) -> dict:
    """This project's path from the file to customer features, as a run takes it: the file loaded into the
    lake (snapshot, raw gate, typing, every rejection rule, duplicates, staging gate, Parquet), the history
    built over it, the features."""
    return _load_and_build(source, workdir, "full")


def project_delta(source: Path, workdir: Path) -> dict:
    """A day's file onto the history `project` built in WORKDIR: loading it and rebuilding the features."""
    return _load_and_build(source, workdir, "delta")


def project_features(_: Path, workdir: Path) -> int:
    """This project's RFM feature build, `customer_features`, over the history `project` built in WORKDIR,
    from every invoice's sums as a first publication makes it: the customer sums the project's task kept
    are set aside first, or the build would only read them."""
    from retail_seg.core.features import build_customer_features
    from retail_seg.core.tables import CUSTOMER_SUMS_BASIS

    with _warehouse(workdir) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {CUSTOMER_SUMS_BASIS}")
        build = build_customer_features(conn)
        assert build.sums == "summed from every invoice", build.sums
        return build.customers


def pandas_groupby(source: Path, _: Path) -> int:
    """What a notebook does: read the file, drop guests, group by customer."""
    import pandas as pd

    lines = pd.read_parquet(
        source, columns=["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    )
    lines = lines.dropna(subset=["CustomerID"])
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    sales = lines[lines["Quantity"] > 0]
    features = pd.DataFrame(
        {
            "last_purchase": sales.groupby("CustomerID")["InvoiceDate"].max(),
            "frequency": sales.groupby("CustomerID")["InvoiceNo"].nunique(),
            "monetary": lines.groupby("CustomerID")["amount"].sum(),
        }
    )
    return len(features)


def pymc_marketing(source: Path, _: Path) -> int:
    """pymc-marketing's rfm_summary on the same lines (in its own environment: it pins its own stack)."""
    import pandas as pd
    from pymc_marketing.clv.utils import rfm_summary

    lines = pd.read_parquet(
        source, columns=["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    )
    lines = lines.dropna(subset=["CustomerID"])
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    lines["InvoiceDate"] = pd.to_datetime(lines["InvoiceDate"])
    summary = rfm_summary(lines, "CustomerID", "InvoiceDate", monetary_value_col="amount")
    return len(summary)


def kmeans_sweep(_: Path, workdir: Path) -> int:
    """One K-Means sweep, k = 2..10 with scikit-learn's defaults, over the bare query's customers (log R,
    F, M, standardized): the clustering a notebook would run, the other half of the pipeline's baseline."""
    import duckdb
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    with duckdb.connect(str(workdir / "bare.duckdb"), read_only=True) as conn:
        frame = conn.execute(
            "SELECT date_diff('day', last_purchase, (SELECT max(last_purchase) FROM rfm)) AS recency, "
            "frequency, CAST(monetary AS DOUBLE) AS monetary FROM rfm "
            "WHERE last_purchase IS NOT NULL AND monetary > 0"
        ).df()
    matrix = StandardScaler().fit_transform(np.log1p(frame.to_numpy(dtype=float)))
    for k in range(2, 11):
        KMeans(n_clusters=k, random_state=0).fit(matrix)
    return len(frame)


def _value_summary(source: Path):
    import pandas as pd

    return pd.read_parquet(source)


def value_project(source: Path, _: Path) -> dict:
    """This project's BG/NBD + Gamma-Gamma fit (maximum likelihood, scipy) and scoring of every customer:
    p_alive, expected purchases, expected spend and lifetime value."""
    from retail_seg.core.lifetime import customer_value

    value, purchases, spend = customer_value(_value_summary(source))
    assert value["p_alive"].between(0, 1).all()
    return {"customers": len(value), "parameters": {**purchases.__dict__, **spend.__dict__}}


def value_pymc(source: Path, _: Path) -> dict:
    """pymc-marketing's BetaGeoModel and GammaGammaModel fitted by MAP on the same customers, and their
    p_alive, expected purchases and expected spend for every customer."""
    import warnings

    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    warnings.filterwarnings("ignore")
    summary = _value_summary(source)
    data = summary.rename(columns={"x": "frequency", "t_x": "recency"})[
        ["customer_id", "frequency", "recency", "T"]
    ]
    purchases = BetaGeoModel(data=data)
    purchases.fit(method="map", progressbar=False)
    repeat = summary[(summary["x"] > 0) & (summary["m_x"] > 0)]
    spending = repeat.rename(columns={"x": "frequency", "m_x": "monetary_value"})
    spend = GammaGammaModel(data=spending[["customer_id", "frequency", "monetary_value"]])
    spend.fit(method="map", progressbar=False)
    purchases.expected_probability_alive(data=data)
    purchases.expected_purchases(data=data, future_t=13)
    spend.expected_customer_spend(data=spending[["customer_id", "frequency", "monetary_value"]])
    fitted = {
        name: float(model.idata.posterior[name].mean())
        for model, names in ((purchases, ("r", "alpha", "a", "b")), (spend, ("p", "q", "v")))
        for name in names
    }
    fitted["gamma"] = fitted.pop("v")
    return {"customers": len(summary), "parameters": fitted}


PROJECT_IMPORTS = (
    "duckdb",
    "great_expectations",
    "retail_seg.core.loads",
    "retail_seg.core.history",
    "retail_seg.core.features",
)
# What each method imports, loaded before its clock starts, so its seconds are its work's.
IMPORTS = {
    "bare_duckdb": ["duckdb"],
    "lines_copy": ["duckdb"],
    "rules_floor": ["duckdb"],
    "project": [*PROJECT_IMPORTS],
    "project_delta": [*PROJECT_IMPORTS],
    "project_features": ["duckdb", "retail_seg.core.features"],
    "pandas": ["pandas", "pyarrow.parquet"],
    "pymc_marketing": ["pandas", "pyarrow.parquet", "pymc_marketing.clv.utils"],
    "kmeans_sweep": ["duckdb", "numpy", "sklearn.cluster"],
    "value_project": ["pandas", "retail_seg.core.lifetime"],
    "value_pymc": ["pandas", "pymc_marketing.clv"],
}

METHODS = {
    "bare_duckdb": bare_duckdb,
    "lines_copy": lines_copy,
    "rules_floor": rules_floor,
    "project": project,
    "project_delta": project_delta,
    "project_features": project_features,
    "pandas": pandas_groupby,
    "pymc_marketing": pymc_marketing,
    "kmeans_sweep": kmeans_sweep,
    "value_project": value_project,
    "value_pymc": value_pymc,
}


def main() -> None:
    method, source = sys.argv[1], Path(sys.argv[2])
    workdir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")
    for module in IMPORTS[method]:
        importlib.import_module(module)
    if "great_expectations" in IMPORTS[method]:  # its context, made once per process, is start-up too
        from retail_seg.core.expectations import gx_context

        gx_context()
    start = time.perf_counter()
    found = METHODS[method](source, workdir)
    found = found if isinstance(found, dict) else {"customers": found}
    print(json.dumps({"seconds": time.perf_counter() - start, **found}))


if __name__ == "__main__":
    main()
