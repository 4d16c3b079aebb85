"""The kept customer sums against sums from every invoice, over random (seeded) histories.

`build_customer_features` keeps each customer's sums between publications (`staging.customer_sums`) and,
when the history only gained loads, adds the new loads' invoices to them. Each seed here writes a small
history file by file -- new days, late files of earlier days, amended orders that repeat lines and invoice
numbers of earlier files (numbered or not), exports overlapping an earlier file, corrections under the same
name, refused files (new, or refused corrections), erasures, another absurd-quantity factor, several of
these before one publication, builds as of a date -- and after every step builds the features the nightly
way (kept sums in place), then again with the kept sums dropped, in the same warehouse, and requires the two
candidates (and the sums) to be the same row for row. The kept sums are put back afterwards, so what the
nightly way kept goes on to the next step. At the end a fresh warehouse over the same lake must agree too.
A failure names the steps taken and the rows that differ.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from retail_seg.core import features
from retail_seg.core.erasure import erase_customer
from retail_seg.core.features import FeatureBuild, build_customer_features
from retail_seg.core.history import build_history
from retail_seg.core.lake import Lake
from retail_seg.core.loads import LoadRules, load_file
from retail_seg.core.mappings import load_mappings
from retail_seg.core.sources import CANONICAL_COLUMNS
from retail_seg.core.tables import CUSTOMER_FEATURES, CUSTOMER_SUMS, CUSTOMER_SUMS_BASIS
from retail_seg.core.warehouse import exists
from retail_seg_tests.conftest import warehouse_over, write_csv

RULES = LoadRules(run_date=dt.date(2026, 1, 1))
HEADER = list(CANONICAL_COLUMNS)
MAPPINGS = load_mappings()
START = dt.date(2024, 3, 1)
SEEDS = (11, 23, 37, 41, 59)
STEPS = 12
CANDIDATE = CUSTOMER_FEATURES.candidate
# A product's code, description and price; prices with more than cents make sums that round.
PRODUCTS = tuple(
    (f"P{i:02d}", f"ITEM {i}", price)
    for i, price in enumerate(
        ("1.25", "2.50", "0.85", "3.75", "12.95", "0.42", "4.99", "7.50", "0.125", "19.99", "2.1", "5.555")
    )
)
CUSTOMERS = tuple(str(10000 + n) for n in range(120))
# The absurd-quantity factors a publication may judge by (None: no quantity is absurd).
FACTORS = (1000.0, 4.0, None)


def _spelled(rng: random.Random, customer: str) -> str:
    """The customer id as some files write it: a spreadsheet's float, or spaces around it."""
    return rng.choices([customer, f"{customer}.0", f" {customer} "], weights=(8, 1, 1))[0]


@dataclass
class Story:
    """The files one seed writes, what the lake holds of them, and a log of what was done."""

    rng: random.Random
    folder: Path
    warehouse: Path
    accepted: dict[str, list[list[str]]] = field(default_factory=dict)  # the lines in force, by file
    day: int = 0
    invoice: int = 500000
    loads: int = 0
    factor: float | None = 1000.0
    as_of: dt.date | None = None
    log: list[str] = field(default_factory=list)

    @property
    def lake(self) -> Lake:
        return Lake(self.warehouse)

    # -- lines -----------------------------------------------------------------------------------------

    def _number(self) -> str:
        self.invoice += 1
        return str(self.invoice)

    def _quantity(self) -> str:
        kind = self.rng.random()
        if kind < 0.06:
            return str(-self.rng.randint(1, 3))  # a return
        if kind < 0.09:
            return str(self.rng.randint(10, 30))  # a bulk order: absurd under a low factor
        if kind < 0.095:
            return "50000"  # an entry error: absurd by any factor
        if kind < 0.11:
            return "0"  # rejected by the load
        return str(self.rng.randint(1, 6))

    def _line(self, invoice: str, customer: str, when: dt.datetime) -> list[str]:
        code, description, price = self.rng.choice(PRODUCTS)
        if self.rng.random() < 0.01:
            customer = ""  # rejected: no customer
        quantity, stamp = self._quantity(), f"{when:%Y-%m-%d %H:%M:%S}"
        return [invoice, code, description, quantity, price, stamp, customer, "UK"]

    def _invoice(self, customer: str, when: dt.datetime, invoice: str | None = None) -> list[list[str]]:
        """One invoice of 1-6 lines; sometimes only returns, sometimes without an invoice number."""
        if invoice is None:
            invoice = "" if self.rng.random() < 0.01 else self._number()
        spelled = _spelled(self.rng, customer)
        lines = [self._line(invoice, spelled, when) for _ in range(self.rng.randint(1, 6))]
        if self.rng.random() < 0.05:  # a refund invoice: every line returned
            lines = [[*line[:3], str(-abs(int(line[3]) or 1)), *line[4:]] for line in lines]
        if self.rng.random() < 0.03:  # a line the export wrote twice
            lines.append(list(self.rng.choice(lines)))
        return lines

    def _when(self, day: int) -> dt.datetime:
        date = START + dt.timedelta(days=day)
        return dt.datetime.combine(date, dt.time(self.rng.randint(7, 21), self.rng.randint(0, 59)))

    def _day_lines(self, invoices: int) -> list[list[str]]:
        self.day += 1
        # A few regulars buy most days, the rest now and then.
        weights = [8 if n < 10 else 1 for n in range(len(CUSTOMERS))]
        lines = []
        for _ in range(invoices):
            lines += self._invoice(self.rng.choices(CUSTOMERS, weights)[0], self._when(self.day))
        return lines

    def _earlier_lines(self) -> list[list[str]]:
        return [line for rows in self.accepted.values() for line in rows]

    # -- what happens to the history -------------------------------------------------------------------

    def _load(self, name: str, rows: list[list[str]], accepted: bool = True) -> None:
        path = write_csv(self.folder / name, HEADER, rows)
        self.loads += 1
        outcome = load_file(
            path,
            self.lake,
            load_id=f"{name}@l{self.loads}",
            run_id=f"l{self.loads}",
            rules=RULES,
            mappings=MAPPINGS,
            id_key=None,
        )
        assert outcome.accepted == accepted, (self.log, outcome.raw_gate.message(), outcome.staging_gate)
        if accepted:
            self.accepted[name] = rows

    def day_file(self) -> str:
        """A new day's export."""
        name = f"day{self.day + 1:03d}.csv"
        self._load(name, self._day_lines(self.rng.randint(40, 70)))
        return f"day: {name}"

    def two_days(self) -> str:
        """Two days' exports loaded before one publication."""
        return f"{self.day_file()} + {self.day_file()}"

    def amended(self) -> str:
        """A day's export that also amends earlier orders: some of their lines again (repeats), new lines on
        the same invoice numbers (on their date or today's), and an invoice number reused for another
        customer."""
        earlier = [line for line in self._earlier_lines() if line[6].strip()]
        name = f"day{self.day + 1:03d}.csv"
        rows = self._day_lines(self.rng.randint(30, 50))
        picked = self.rng.sample(earlier, min(len(earlier), self.rng.randint(3, 12)))
        for line in picked:
            invoice, customer, when = line[0], line[6], dt.datetime.fromisoformat(line[5])
            kind = self.rng.random()
            if kind < 0.4:
                rows.append(list(line))  # the same line again
            elif kind < 0.7:
                rows += self._invoice(customer.strip().removesuffix(".0"), when, invoice)
            elif kind < 0.9:
                rows += self._invoice(customer.strip().removesuffix(".0"), self._when(self.day), invoice)
            else:
                rows += self._invoice(self.rng.choice(CUSTOMERS), self._when(self.day), invoice)
        blank = [line for line in earlier if not line[0]]
        if blank and self.rng.random() < 0.5:  # more lines without an invoice number, for the same customer
            customer = self.rng.choice(blank)[6].strip().removesuffix(".0")
            rows += self._invoice(customer, self._when(self.day), "")
        self.rng.shuffle(rows)
        self._load(name, rows)
        return f"amended: {name} repeats or extends {len(picked)} earlier invoices"

    def overlapping(self) -> str:
        """A day's export that also holds every line of an earlier file (an export of a longer period)."""
        earlier = self.rng.choice(sorted(self.accepted))
        name = f"day{self.day + 1:03d}.csv"
        self._load(name, [*self._day_lines(self.rng.randint(10, 30)), *self.accepted[earlier]])
        return f"overlapping: {name} holds all of {earlier}"

    def late_file(self) -> str:
        """A file that arrives late: another shop's export of an earlier day, with invoices of its own."""
        day = self.rng.randint(-3, self.day)
        name = f"late{self.loads:03d}.csv"
        weights = [8 if n < 10 else 1 for n in range(len(CUSTOMERS))]
        rows = []
        for _ in range(self.rng.randint(20, 40)):
            rows += self._invoice(self.rng.choices(CUSTOMERS, weights)[0], self._when(day))
        self._load(name, rows)
        return f"late: {name} of day {day}"

    def corrected(self) -> str:
        """An earlier file again under its name, corrected: lines dropped, quantities changed, lines added."""
        name = self.rng.choice(sorted(self.accepted))
        rows = []
        for line in self.accepted[name]:
            kind = self.rng.random()
            if kind < 0.1:
                continue
            if kind < 0.2:
                line = [*line[:3], str(self.rng.randint(1, 9)), *line[4:]]
            rows.append(line)
        day = (dt.datetime.fromisoformat(self.accepted[name][0][5]).date() - START).days
        for _ in range(self.rng.randint(0, 5)):
            rows += self._invoice(self.rng.choice(CUSTOMERS), self._when(day))
        self._load(name, rows)
        return f"corrected: {name}"

    def refused(self) -> str:
        """A file refused at staging (most of its lines have no quantity): a new one, or a correction of an
        earlier one, which leaves the earlier load in force."""
        if self.accepted and self.rng.random() < 0.5:
            name = self.rng.choice(sorted(self.accepted))
        else:
            name = f"bad{self.loads:03d}.csv"
        rows = self._day_lines(30)
        self.day -= 1
        rows = [[*line[:3], "0", *line[4:]] if i % 5 else line for i, line in enumerate(rows)]
        self._load(name, rows, accepted=False)
        return f"refused: {name}"

    def erased(self, conn: duckdb.DuckDBPyConnection) -> str:
        """One customer of the history erased, from the warehouse and the lake. The files written here still
        hold them, so a later correction or overlapping export may bring them back, as a real one would."""
        held = sorted({line[6].strip().removesuffix(".0") for line in self._earlier_lines()} - {""})
        customer = self.rng.choice(held)
        erase_customer(conn, customer, self.lake, self.folder / "exports", dt.datetime(2026, 1, 1))
        return f"erased: customer {customer}"

    def rejudged(self) -> str:
        """The next publication judges quantities by another factor."""
        self.factor = FACTORS[(FACTORS.index(self.factor) + 1) % len(FACTORS)]
        return f"absurd factor: {self.factor}"

    def dated(self) -> str:
        """The features built as of a date (which never uses the kept sums)."""
        self.as_of = START + dt.timedelta(days=self.rng.randint(0, self.day + 2))
        return f"as of: {self.as_of}"

    def busy(self) -> str:
        """Several changes before one publication: a correction, a refused file and a new day."""
        return f"{self.corrected()} + {self.refused()} + {self.day_file()}"

    def unchanged(self) -> str:
        return "published again, nothing changed"


def _step(story: Story, conn: duckdb.DuckDBPyConnection, op: str) -> str:
    story.as_of = None
    if op == "erase":
        return story.erased(conn)
    return {
        "day": story.day_file,
        "two days": story.two_days,
        "late": story.late_file,
        "overlap": story.overlapping,
        "amend": story.amended,
        "correct": story.corrected,
        "refuse": story.refused,
        "busy": story.busy,
        "rejudge": story.rejudged,
        "as of": story.dated,
        "unchanged": story.unchanged,
    }[op]()


# How often each step is drawn after the first day.
WEIGHTS = {
    "day": 3,
    "two days": 1,
    "late": 1,
    "overlap": 1,
    "amend": 3,
    "correct": 2,
    "refuse": 1,
    "busy": 1,
    "erase": 1,
    "rejudge": 1,
    "as of": 1,
    "unchanged": 0.5,
}


def _steps(seed: int, count: int) -> list[str]:
    rng = random.Random(f"steps-{seed}")
    return ["day", *rng.choices(list(WEIGHTS), list(WEIGHTS.values()), k=count - 1)]


def _differences(conn: duckdb.DuckDBPyConnection, kept: str, summed: str) -> list[tuple]:
    return conn.execute(
        f"""SELECT 'kept only' AS side, * FROM (SELECT * FROM {kept} EXCEPT ALL SELECT * FROM {summed})
            UNION ALL
            SELECT 'every invoice only', * FROM (SELECT * FROM {summed} EXCEPT ALL SELECT * FROM {kept})
            ORDER BY 2, 1 LIMIT 20"""
    ).fetchall()


def _counts(build: FeatureBuild) -> tuple:
    return (build.as_of, build.customers, build.without_purchase, build.non_positive_spend)


def _check_against_every_invoice(
    conn: duckdb.DuckDBPyConnection, build: FeatureBuild, as_of: dt.date | None, log: list[str]
) -> None:
    """Build the features again with the kept sums dropped, compare, and put the kept sums back."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _nightly AS SELECT * FROM {CANDIDATE}")
    kept = [table for table in (CUSTOMER_SUMS, CUSTOMER_SUMS_BASIS) if exists(conn, table)]
    for table in kept:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _kept_{table.name} AS SELECT * FROM {table}")
        conn.execute(f"DROP TABLE {table}")
    try:
        summed = build_customer_features(conn, as_of=as_of)
        assert summed.sums == "summed from every invoice"
        rows = _differences(conn, "_nightly", str(CANDIDATE))
        assert not rows, f"features differ after {log} (nightly: {build.sums}):\n" + "\n".join(map(str, rows))
        assert _counts(build) == _counts(summed), (log, build, summed)
        if as_of is None:  # the sums themselves, customers left out of the features included
            rows = _differences(conn, f"_kept_{CUSTOMER_SUMS.name}", str(CUSTOMER_SUMS))
            assert not rows, f"kept sums differ after {log} ({build.sums}):\n" + "\n".join(map(str, rows))
    finally:
        for table in kept:
            conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _kept_{table.name}")
            conn.execute(f"DROP TABLE _kept_{table.name}")
        conn.execute("DROP TABLE IF EXISTS _nightly")


def _check_fresh_warehouse(tmp_path: Path, story: Story, nightly: list[tuple]) -> None:
    """The same lake's history built in a fresh warehouse, in one go, gives the same features."""
    fresh = warehouse_over(story.lake, tmp_path / "fresh")
    with duckdb.connect(str(fresh)) as conn:
        build_history(conn, Lake(fresh), "fresh", absurd_factor=story.factor)
        build_customer_features(conn)
        fresh_rows = conn.execute(f"SELECT * FROM {CANDIDATE} ORDER BY customer_id").fetchall()
    assert fresh_rows == nightly, f"a fresh warehouse over the same lake differs after {story.log}"


def run_story(tmp_path: Path, seed: int, steps: list[str]) -> list[str]:
    """Play `steps` on a fresh lake and warehouse, checking the features after each; how each nightly
    build had its sums."""
    story = Story(random.Random(seed), tmp_path, tmp_path / "warehouse.duckdb")
    hows = []
    with duckdb.connect(str(story.warehouse)) as conn:
        for number, op in enumerate(steps):
            story.log.append(_step(story, conn, op))
            build_history(conn, story.lake, f"run{number}", absurd_factor=story.factor)
            build = build_customer_features(conn, as_of=story.as_of)
            hows.append(build.sums)
            _check_against_every_invoice(conn, build, story.as_of, story.log)
        if story.as_of is not None:
            build_customer_features(conn)
        nightly = conn.execute(f"SELECT * FROM {CANDIDATE} ORDER BY customer_id").fetchall()
    _check_fresh_warehouse(tmp_path, story, nightly)
    return hows


@pytest.mark.parametrize("seed", SEEDS)
def test_kept_sums_are_the_sums_of_every_invoice_after_every_step(tmp_path, seed):
    hows = run_story(tmp_path, seed, _steps(seed, STEPS))
    assert hows[0] == "summed from every invoice"
    assert any(how.startswith("kept, and") for how in hows), hows  # new loads were added to kept sums


def test_the_seeds_take_every_step():
    """The seeds between them take every way of having the sums, so the comparisons above test them."""
    drawn = {op for seed in SEEDS for op in _steps(seed, STEPS)}
    assert drawn == set(WEIGHTS)


# Ways to get the kept sums wrong, each of which some story must catch.
def _adds_nothing(conn, invoices, added):
    """New loads' invoices never reach the kept sums."""


def _checksums_only(original: Callable) -> Callable:
    """A load's part is the summing code and its file's checksum alone: a new verdict on an earlier load's
    lines goes unnoticed."""

    def parts(conn):
        found = original(conn)
        return (
            None if found is None else {load: ":".join(part.split(":")[:2]) for load, part in found.items()}
        )

    return parts


@pytest.mark.parametrize(
    ("mutant", "steps"),
    [
        ("_add_loads", ["day", "day"]),
        ("_parts", ["day", "day", "day", "rejudge"]),
    ],
)
def test_a_wrong_kept_sum_is_caught(tmp_path, monkeypatch, mutant, steps):
    wrong = _adds_nothing if mutant == "_add_loads" else _checksums_only(features._parts)
    monkeypatch.setattr(features, mutant, wrong)
    with pytest.raises(AssertionError, match="differ after"):
        run_story(tmp_path, SEEDS[0], steps)
