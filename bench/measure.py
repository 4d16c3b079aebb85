"""One measured task, run in a process of its own so its peak memory is its own.

    python bench/measure.py METHOD SOURCE [WORKDIR]

Prints a JSON object with the task's wall seconds and what it produced. The parent reads the peak
resident memory of this process from the operating system. BENCH_MEMORY_LIMIT (default 4GB) is the
DuckDB memory limit of the project's task.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# The bare DuckDB query: what the hardware can do for RFM over this file, with nothing else.
BARE_DUCKDB = """
    SELECT CustomerID,
           max(InvoiceDate) FILTER (WHERE Quantity > 0) AS last_purchase,
           count(DISTINCT InvoiceNo) FILTER (WHERE Quantity > 0) AS frequency,
           sum(Quantity * UnitPrice) AS monetary
    FROM read_parquet(?)
    WHERE CustomerID IS NOT NULL
    GROUP BY CustomerID
"""


def bare_duckdb(source: Path, _: Path) -> int:
    import duckdb

    return len(duckdb.connect().execute(BARE_DUCKDB, [str(source)]).fetchall())


def project(source: Path, workdir: Path) -> int:
    """This project's path from the file to customer features: raw load, staging, features."""
    import datetime as dt

    import duckdb

    from retail_seg.core.cleaning import clean_transactions
    from retail_seg.core.features import build_customer_features
    from retail_seg.core.sources import load_raw
    from retail_seg.core.warehouse import (
        RAW_TRANSACTIONS,
        REJECTED_ROWS,
        STAGING_TRANSACTIONS,
        publish,
    )

    with duckdb.connect(
        str(workdir / "bench.duckdb"), config={"memory_limit": os.environ.get("BENCH_MEMORY_LIMIT", "4GB")}
    ) as conn:
        load_raw(conn, source, load_id="bench")
        publish(conn, RAW_TRANSACTIONS)
        clean_transactions(conn, run_date=dt.date(2030, 1, 1))
        publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
        return build_customer_features(conn).customers
    return 0


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


METHODS = {
    "bare_duckdb": bare_duckdb,
    "project": project,
    "pandas": pandas_groupby,
    "pymc_marketing": pymc_marketing,
}


def main() -> None:
    method, source = sys.argv[1], Path(sys.argv[2])
    workdir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")
    start = time.perf_counter()
    customers = METHODS[method](source, workdir)
    print(json.dumps({"seconds": time.perf_counter() - start, "customers": customers}))


if __name__ == "__main__":
    main()
