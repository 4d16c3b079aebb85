"""The warehouse resource bounds DuckDB's memory when told to, and one process holds it at a time."""

import dataclasses
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from retail_seg import settings
from retail_seg.defs.resources import Warehouse

HOLD_SECONDS = 2.0
_HOLDER = """
import sys, time
from retail_seg.defs.resources import Warehouse
with Warehouse(database=sys.argv[1]).get_connection() as conn:
    conn.execute("CREATE OR REPLACE TABLE t AS SELECT 1 AS x")
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_memory_limit_reaches_duckdb(tmp_path):
    with Warehouse(database=str(tmp_path / "w.duckdb"), memory_limit="1GB").get_connection() as conn:
        limited = conn.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    with Warehouse(database=str(tmp_path / "w.duckdb")).get_connection() as conn:
        default = conn.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limited == "953.6 MiB"  # DuckDB reports 1 GB in MiB
    assert default != limited


def test_a_second_process_waits_for_the_warehouse_instead_of_failing(tmp_path):
    database = str(tmp_path / "w.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, database, str(HOLD_SECONDS)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    with Warehouse(database=database).get_connection() as conn:
        waited = time.monotonic() - start
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert holder.wait(timeout=30) == 0
    assert waited > HOLD_SECONDS / 2  # it queued behind the holder rather than hitting DuckDB's lock error


def test_first_runs_at_once_make_one_personal_data_key_and_all_use_it(tmp_path, monkeypatch):
    path = tmp_path / "data" / ".id_key"
    monkeypatch.delenv(settings.ID_KEY.variable, raising=False)
    monkeypatch.setattr(settings, "ID_KEY", dataclasses.replace(settings.ID_KEY, default=str(path)))
    start = threading.Barrier(8)

    def first_run(_):
        start.wait()
        return settings.id_key()

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(first_run, range(8)))
    assert keys == {path.read_text()} and len(path.read_text()) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == [".id_key"]  # nothing left aside
