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

# The bare DuckDB query: what the hardware can do for RFM over this file, with nothing else. It computes
# what the project's features compute for R, F and M -- timestamps parsed, money summed exactly, lines
# without a customer or a price left out -- and lands the result in a DuckDB file, as the project does.
# Like the project, it groups by invoice before customer, DuckDB's fastest way to count invoices (a
# count(DISTINCT) next to other aggregates is 15-25% slower).
BARE_DUCKDB = """
    CREATE TABLE rfm AS
    SELECT customer_id, max(last_purchase) AS last_purchase, count(last_purchase) AS frequency,
           sum(spend) AS monetary
    FROM (
        SELECT CustomerID AS customer_id,
               max(CAST(InvoiceDate AS TIMESTAMP)) FILTER (WHERE Quantity > 0) AS last_purchase,
               sum(Quantity * CAST(UnitPrice AS DECIMAL(18, 4))) AS spend
        FROM read_parquet(?)
        WHERE CustomerID IS NOT NULL AND UnitPrice > 0
        GROUP BY CustomerID, InvoiceNo
    )
    GROUP BY customer_id
"""


def bare_duckdb(source: Path, workdir: Path) -> int:
    import duckdb

    with duckdb.connect(str(workdir / "bare.duckdb"), config={"memory_limit": MEMORY_LIMIT}) as conn:
        conn.execute(BARE_DUCKDB, [str(source)])
        return conn.execute("SELECT count(*) FROM rfm").fetchall()[0][0]


WAREHOUSE = "bench.duckdb"


def _warehouse(workdir: Path):
    import duckdb

    return duckdb.connect(str(workdir / WAREHOUSE), config={"memory_limit": MEMORY_LIMIT})


def project(source: Path, workdir: Path) -> int:
    """This project's path from the file to customer features: raw load, staging, features."""
    import datetime as dt

    from retail_seg.core.cleaning import clean_transactions
    from retail_seg.core.features import build_customer_features
    from retail_seg.core.sources import load_raw
    from retail_seg.core.tables import RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
    from retail_seg.core.warehouse import publish

    with _warehouse(workdir) as conn:
        load_raw(conn, source, load_id="bench")
        publish(conn, RAW_TRANSACTIONS)
        clean_transactions(conn, run_date=dt.date(2030, 1, 1))
        publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
        return build_customer_features(conn).customers


def project_features(_: Path, workdir: Path) -> int:
    """This project's RFM feature build, `customer_features`, over the lines `project` staged in WORKDIR."""
    from retail_seg.core.features import build_customer_features

    with _warehouse(workdir) as conn:
        return build_customer_features(conn).customers


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


# What each method imports, loaded before its clock starts, so its seconds are its work's.
IMPORTS = {
    "bare_duckdb": ["duckdb"],
    "project": ["duckdb", "retail_seg.core.cleaning", "retail_seg.core.features", "retail_seg.core.sources"],
    "project_features": ["duckdb", "retail_seg.core.features"],
    "pandas": ["pandas", "pyarrow.parquet"],
    "pymc_marketing": ["pandas", "pyarrow.parquet", "pymc_marketing.clv.utils"],
}

METHODS = {
    "bare_duckdb": bare_duckdb,
    "project": project,
    "project_features": project_features,
    "pandas": pandas_groupby,
    "pymc_marketing": pymc_marketing,
}


def main() -> None:
    method, source = sys.argv[1], Path(sys.argv[2])
    workdir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")
    for module in IMPORTS[method]:
        importlib.import_module(module)
    start = time.perf_counter()
    customers = METHODS[method](source, workdir)
    print(json.dumps({"seconds": time.perf_counter() - start, "customers": customers}))


if __name__ == "__main__":
    main()
