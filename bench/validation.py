"""How long the quality gates take on a source, against the whole staging-to-segments build they guard.

.venv/bin/python bench/validation.py ../shared/data/online_retail.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb

from retail_seg.core import quality
from retail_seg.core.cleaning import clean_transactions
from retail_seg.core.expectations import gx_context
from retail_seg.core.features import build_customer_features
from retail_seg.core.sources import load_raw
from retail_seg.core.tables import CUSTOMER_FEATURES, RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import publish


def timed(action):
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    args = parser.parse_args()
    _, gx_import = timed(gx_context)  # import and context, paid once per process
    with tempfile.TemporaryDirectory() as folder, duckdb.connect(str(Path(folder) / "w.duckdb")) as conn:
        loaded, load = timed(lambda: load_raw(conn, args.source, load_id="bench"))
        raw_gate, raw_time = timed(lambda: quality.raw_gate(conn, RAW_TRANSACTIONS.candidate, loaded.format))
        publish(conn, RAW_TRANSACTIONS)
        run_date = dt.date.today()
        _, clean = timed(lambda: clean_transactions(conn, run_date=run_date))
        staging_gate, staging_time = timed(
            lambda: quality.staging_gate(
                conn, STAGING_TRANSACTIONS.candidate, REJECTED_ROWS.candidate, run_date, dt.date(2000, 1, 1)
            )
        )
        publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
        _, features = timed(lambda: build_customer_features(conn))
        features_gate, features_time = timed(lambda: quality.features_gate(conn, CUSTOMER_FEATURES.candidate))
    gates = raw_time + staging_time + features_time
    work = load + clean + features
    print(f"source: {args.source} ({loaded.rows:,} lines, {loaded.format.name})")
    print("| step | seconds | gate passed |")
    print("| --- | ---: | --- |")
    print(f"| GX import and context (once per process) | {gx_import:.2f} | |")
    print(f"| load raw | {load:.2f} | |")
    print(f"| raw gate | {raw_time:.2f} | {raw_gate.passed} |")
    print(f"| clean | {clean:.2f} | |")
    print(f"| staging gate | {staging_time:.2f} | {staging_gate.passed} |")
    print(f"| features | {features:.2f} | |")
    print(f"| features gate | {features_time:.2f} | {features_gate.passed} |")
    print(f"gates: {gates:.2f} s, {gates / work:.0%} of the {work:.2f} s of work they guard")


if __name__ == "__main__":
    main()
