"""The embedded default data: a seeded, online-retail-like export with planted customer groups and real dirt.

Each planted group has its own recency, frequency and basket size, so a segmentation that works must
find them again; the dirt (guest lines, duplicates, cancellations, bad prices, absurd quantities,
missing ages, gender spelled many ways) is what real exports carry, so staging has real work to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Group:
    """A planted behaviour: ranges are inclusive (low, high) and drawn uniformly per customer."""

    name: str
    share: float
    invoices: tuple[int, int]
    recency_days: tuple[int, int]
    first_purchase_days: tuple[int, int]
    lines_per_invoice: tuple[int, int]
    quantity_scale: float
    mean_age: float


GROUPS = (
    Group("champions", 0.10, (20, 45), (0, 10), (500, 720), (6, 14), 1.0, 46),
    Group("loyal_regulars", 0.20, (8, 18), (3, 45), (300, 700), (3, 7), 1.0, 51),
    Group("big_ticket_occasional", 0.12, (2, 4), (20, 150), (150, 600), (12, 25), 4.0, 40),
    Group("new_customers", 0.13, (1, 2), (0, 30), (0, 45), (3, 8), 1.0, 31),
    Group("lapsing", 0.20, (4, 10), (250, 500), (550, 720), (3, 7), 1.0, 43),
    Group("one_off", 0.25, (1, 1), (150, 700), (150, 700), (1, 4), 0.6, 36),
)

COUNTRIES = (
    ("United Kingdom", 0.85),
    ("Germany", 0.03),
    ("France", 0.03),
    ("EIRE", 0.02),
    ("Spain", 0.015),
    ("Netherlands", 0.015),
    ("Belgium", 0.01),
    ("Switzerland", 0.01),
    ("Portugal", 0.01),
    ("Australia", 0.01),
)
GENDER_SPELLINGS = {
    "female": ("F", "f", "female", "Female", "FEMALE", " Female ", "Woman"),
    "male": ("M", "m", "male", "Male", "MALE", "male ", "Man"),
    "other": ("Other", "X", "non-binary"),
}
CATEGORIES = ("Home", "Kitchen", "Gifts", "Garden", "Stationery", "Party", "Toys")
_ADJECTIVES = ("WHITE", "RED", "VINTAGE", "HEART", "REGENCY", "JUMBO", "PINK", "GLASS", "SET OF 3", "LARGE")
_NOUNS = ("T-LIGHT HOLDER", "LANTERN", "CAKESTAND", "LUNCH BAG", "BUNTING", "TEACUP", "CLOCK", "NAPKINS")


@dataclass(frozen=True)
class SyntheticData:
    """A generated export and, for tests, the group each customer was planted in."""

    transactions: pd.DataFrame
    planted: pd.DataFrame


def _uniform_ints(rng: np.random.Generator, bounds: np.ndarray) -> np.ndarray:
    """One integer per row of `bounds` (n × 2, inclusive)."""
    return rng.integers(bounds[:, 0], bounds[:, 1] + 1)


def _catalogue(rng: np.random.Generator, size: int = 400) -> pd.DataFrame:
    codes = np.array(
        [
            f"{c}{s}"
            for c, s in zip(
                rng.choice(np.arange(20000, 90000), size, replace=False),
                rng.choice(["", "", "", "A", "B", "C"], size),
                strict=True,
            )
        ]
    )
    descriptions = [
        f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}" + (" " if i % 7 == 0 else "") for i in range(size)
    ]
    prices = np.maximum(0.29, np.round(rng.lognormal(mean=1.0, sigma=0.7, size=size), 2))
    return pd.DataFrame(
        {
            "stock_code": codes,
            "description": descriptions,
            "unit_price": prices,
            "product_category": rng.choice(CATEGORIES, size),
        }
    )


def _customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    shares = np.array([g.share for g in GROUPS])
    group_index = rng.choice(len(GROUPS), size=n, p=shares / shares.sum())
    spec = {
        field: np.array([getattr(GROUPS[i], field) for i in group_index])
        for field in ("invoices", "recency_days", "first_purchase_days", "lines_per_invoice")
    }
    recency = _uniform_ints(rng, spec["recency_days"])
    first = np.maximum(_uniform_ints(rng, spec["first_purchase_days"]), recency)
    ages = np.clip(rng.normal([GROUPS[i].mean_age for i in group_index], 12), 18, 85).round()
    countries, weights = zip(*COUNTRIES, strict=True)
    return pd.DataFrame(
        {
            "customer_id": rng.choice(np.arange(10000, 40000), size=n, replace=False).astype(str),
            "group": [GROUPS[i].name for i in group_index],
            "invoices": _uniform_ints(rng, spec["invoices"]),
            "recency_days": recency,
            "first_purchase_days": first,
            "lines_low": spec["lines_per_invoice"][:, 0],
            "lines_high": spec["lines_per_invoice"][:, 1],
            "quantity_scale": [GROUPS[i].quantity_scale for i in group_index],
            "age": np.where(rng.random(n) < 0.10, np.nan, ages),
            "gender": rng.choice(["female", "male", "other"], size=n, p=[0.55, 0.43, 0.02]),
            "country": rng.choice(countries, size=n, p=np.array(weights) / sum(weights)),
        }
    )


def _invoices(rng: np.random.Generator, customers: pd.DataFrame, end: dt.datetime) -> pd.DataFrame:
    """One row per invoice: the last on the customer's recency day, the rest spread back to the first."""
    owner = np.repeat(np.arange(len(customers)), customers["invoices"].to_numpy())
    c = customers.iloc[owner].reset_index(drop=True)
    position = np.concatenate([np.arange(k) for k in customers["invoices"]])
    span = (c["first_purchase_days"] - c["recency_days"]).to_numpy()
    days_back = np.where(position == 0, c["recency_days"], c["recency_days"] + rng.integers(0, span + 1))
    minutes = rng.integers(8 * 60, 19 * 60, size=len(c))
    when = pd.Timestamp(end) - pd.to_timedelta(days_back, unit="D") + pd.to_timedelta(minutes, unit="m")
    lines = rng.integers(c["lines_low"], c["lines_high"] + 1)
    return pd.DataFrame(
        {
            "customer": owner,
            "invoice_date": when.floor("min"),
            "lines": lines,
            "quantity_scale": c["quantity_scale"],
        }
    )


def _lines(rng: np.random.Generator, invoices: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    invoice = np.repeat(np.arange(len(invoices)), invoices["lines"].to_numpy())
    product = rng.integers(0, len(catalogue), size=len(invoice))
    base_quantity = rng.choice(
        [1, 2, 3, 4, 6, 8, 12, 24], size=len(invoice), p=[0.2, 0.2, 0.1, 0.1, 0.15, 0.05, 0.15, 0.05]
    )
    quantity = np.maximum(1, np.round(base_quantity * invoices["quantity_scale"].to_numpy()[invoice])).astype(
        int
    )
    products = catalogue.iloc[product].reset_index(drop=True)
    return pd.DataFrame(
        {
            "invoice": invoice,
            "stock_code": products["stock_code"],
            "description": products["description"],
            "quantity": quantity,
            "unit_price": products["unit_price"],
            "product_category": products["product_category"],
        }
    )


def generate_transactions(
    customers: int = 5000, seed: int = 20251201, end: dt.date = dt.date(2025, 12, 1)
) -> SyntheticData:
    """Generate two years of transactions up to (not including) `end`, deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    end_ts = dt.datetime.combine(end, dt.time()) - dt.timedelta(days=1)
    people = _customers(rng, customers)
    catalogue = _catalogue(rng)
    invoices = _invoices(rng, people, end_ts)

    # Guest checkouts: whole invoices with no customer id.
    guest_invoices = customers // 2
    guests = pd.DataFrame(
        {
            "customer": -1,
            "invoice_date": (
                pd.Timestamp(end_ts)
                - pd.to_timedelta(rng.integers(0, 730, size=guest_invoices), unit="D")
                + pd.to_timedelta(rng.integers(8 * 60, 19 * 60, size=guest_invoices), unit="m")
            ),
            "lines": rng.integers(1, 10, size=guest_invoices),
            "quantity_scale": 1.0,
        }
    )
    invoices = pd.concat([invoices, guests], ignore_index=True).sort_values(["invoice_date", "customer"])
    invoices = invoices.reset_index(drop=True)
    invoices["invoice_no"] = (536000 + np.arange(len(invoices))).astype(str)

    lines = _lines(rng, invoices, catalogue)
    lines = lines.join(invoices[["invoice_no", "invoice_date", "customer"]], on="invoice")
    lines = _with_cancellations(rng, lines, invoices)
    lines = _with_bad_values(rng, lines)

    person = people.iloc[lines["customer"].clip(lower=0)].reset_index(drop=True)
    is_guest = (lines["customer"] < 0).to_numpy()
    gender = _spell_genders(rng, person["gender"].to_numpy())
    transactions = pd.DataFrame(
        {
            "invoice_no": lines["invoice_no"],
            "stock_code": lines["stock_code"],
            "description": lines["description"],
            "quantity": lines["quantity"],
            "unit_price": lines["unit_price"],
            "invoice_date": lines["invoice_date"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "customer_id": np.where(is_guest, "", person["customer_id"]),
            "country": person["country"].where(~is_guest, "United Kingdom"),
            "age": pd.array(np.where(is_guest, np.nan, person["age"]), dtype="Int64"),
            "gender": np.where(is_guest, "", gender),
            "product_category": lines["product_category"],
        }
    )
    transactions = _with_duplicates(rng, transactions)
    planted = people[["customer_id", "group"]].sort_values("customer_id").reset_index(drop=True)
    return SyntheticData(transactions=transactions, planted=planted)


def _with_cancellations(
    rng: np.random.Generator, lines: pd.DataFrame, invoices: pd.DataFrame
) -> pd.DataFrame:
    """Return about 2% of customers' lines within three days, as `C` invoices with negative quantities."""
    candidates = lines[(lines["customer"] >= 0)]
    cancelled = candidates.sample(frac=0.02, random_state=rng.integers(2**31))
    returns = cancelled.assign(
        invoice_no="C" + cancelled["invoice_no"],
        quantity=-np.maximum(
            1, (cancelled["quantity"] * rng.uniform(0.3, 1.0, len(cancelled))).round()
        ).astype(int),
        invoice_date=cancelled["invoice_date"]
        + pd.to_timedelta(rng.integers(1, 72, len(cancelled)), unit="h"),
    )
    latest = invoices["invoice_date"].max()
    returns = returns[returns["invoice_date"] <= latest]
    return pd.concat([lines, returns], ignore_index=True).sort_values("invoice_date", kind="stable")


def _with_bad_values(rng: np.random.Generator, lines: pd.DataFrame) -> pd.DataFrame:
    """Free samples at price 0, a few negative prices, and a handful of absurd quantities."""
    n = len(lines)
    price = lines["unit_price"].to_numpy().copy()
    price[rng.random(n) < 0.003] = 0.0
    negative = rng.choice(n, size=8, replace=False)
    price[negative] = -np.round(rng.uniform(50, 500, size=8), 2)
    quantity = lines["quantity"].to_numpy().copy()
    absurd = rng.choice(np.flatnonzero(quantity > 0), size=6, replace=False)
    quantity[absurd] = rng.integers(20_000, 80_000, size=6)
    return lines.assign(unit_price=price, quantity=quantity).reset_index(drop=True)


def _spell_genders(rng: np.random.Generator, genders: np.ndarray) -> np.ndarray:
    """Each line spells its customer's gender one of the ways exports do; about 3% leave it blank."""
    spelled = np.empty(len(genders), dtype=object)
    for gender, spellings in GENDER_SPELLINGS.items():
        mask = genders == gender
        spelled[mask] = np.array(spellings, dtype=object)[rng.integers(0, len(spellings), mask.sum())]
    return np.where(rng.random(len(genders)) < 0.03, "", spelled)


def _with_duplicates(rng: np.random.Generator, transactions: pd.DataFrame) -> pd.DataFrame:
    """Exact copies of about 1% of lines, each right after its original, as double-posted exports have."""
    copies = transactions.sample(frac=0.01, random_state=rng.integers(2**31))
    order = np.concatenate([np.arange(len(transactions)), copies.index.to_numpy() + 0.5])
    both = pd.concat([transactions, copies], ignore_index=True)
    return both.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def write_synthetic(out_dir: Path, customers: int = 5000, seed: int = 20251201) -> tuple[Path, Path]:
    """Write `transactions.csv` and `planted_groups.csv` under `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = generate_transactions(customers=customers, seed=seed)
    transactions_path = out_dir / "transactions.csv"
    planted_path = out_dir / "planted_groups.csv"
    data.transactions.to_csv(transactions_path, index=False)
    data.planted.to_csv(planted_path, index=False)
    return transactions_path, planted_path
