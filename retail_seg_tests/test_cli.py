"""`python -m retail_seg run`: exit codes and messages a scheduler or a person can act on."""

import duckdb

from retail_seg.cli import main
from retail_seg.core.synthetic import write_synthetic
from retail_seg.core.warehouse import published_checksums


def _environment(monkeypatch, tmp_path, source):
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("RETAIL_SEG_SOURCE", str(source))
    monkeypatch.setenv("RETAIL_SEG_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("RETAIL_SEG_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("RETAIL_SEG_INCOMING", str(tmp_path / "incoming"))
    monkeypatch.setenv("RETAIL_SEG_MEMORY_LIMIT", "1GB")


def _checksums(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        return published_checksums(conn)


def test_missing_column_exits_non_zero_names_it_and_changes_nothing(monkeypatch, tmp_path, capsys):
    source, _ = write_synthetic(tmp_path / "data", customers=300, seed=2)
    _environment(monkeypatch, tmp_path, source)
    assert main(["run"]) == 0
    assert "report: " in capsys.readouterr().out
    before = _checksums(tmp_path)
    assert len(before) == 19  # every table of raw, staging, marts, reports and audit, and the history view

    broken = tmp_path / "data" / "broken.csv"
    lines = source.read_text().splitlines()
    broken.write_text("\n".join(",".join(line.split(",")[:5] + line.split(",")[6:]) for line in lines) + "\n")
    monkeypatch.setenv("RETAIL_SEG_SOURCE", str(broken))
    assert main(["run"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert "broken.csv" in out and "missing column 'invoice_date'" in out
    assert "materialized: nothing" in out
    assert _checksums(tmp_path) == before
