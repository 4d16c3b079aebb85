"""The warehouse resource bounds DuckDB's memory when told to."""

from retail_seg.defs.resources import Warehouse


def test_memory_limit_reaches_duckdb(tmp_path):
    with Warehouse(database=str(tmp_path / "w.duckdb"), memory_limit="1GB").get_connection() as conn:
        limited = conn.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    with Warehouse(database=str(tmp_path / "w.duckdb")).get_connection() as conn:
        default = conn.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limited == "953.6 MiB"  # DuckDB reports 1 GB in MiB
    assert default != limited
