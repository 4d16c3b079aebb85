"""Shared fixtures: an in-memory warehouse, tiny source files, and where the real data lives."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from retail_seg.core.lake import Lake
from retail_seg.core.sources import CANONICAL_COLUMNS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def conn():
    """A fresh in-memory DuckDB warehouse."""
    connection = duckdb.connect()
    yield connection
    connection.close()


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """Write a small CSV export."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def warehouse_over(lake: Lake, folder: Path) -> Path:
    """A fresh warehouse file in `folder` whose lake is `lake`, linked, not copied: the same loads, for a
    history built again in one go."""
    folder.mkdir(exist_ok=True)
    fresh = folder / "warehouse.duckdb"
    link = Lake(fresh).root
    link.unlink(missing_ok=True)
    link.symlink_to(lake.root)
    return fresh


def canonical_row(
    invoice_no="1001",
    stock_code="A1",
    description="MUG",
    quantity="2",
    unit_price="1.50",
    invoice_date="2024-01-10 10:00:00",
    customer_id="c1",
    country="United Kingdom",
) -> list[str]:
    """One canonical-format line; override what a test is about."""
    return [invoice_no, stock_code, description, quantity, unit_price, invoice_date, customer_id, country]


@pytest.fixture
def canonical_csv(tmp_path):
    """Write canonical-format rows to a CSV and return its path."""

    def make(rows: list[list[str]], name: str = "transactions.csv") -> Path:
        return write_csv(tmp_path / name, list(CANONICAL_COLUMNS), rows)

    return make


def real_file(name: str) -> Path:
    """A file from ../shared/data, or skip the test when the folder is not there."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path
