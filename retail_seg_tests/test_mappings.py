"""Exports as retailers' own systems write them, each read by a declared mapping: Shopify's orders export,
Square's item sales, and a European ERP's semicolon file declared by the user; conventions stay with the
mapping that declares them, and a mapping that is wrong says where."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from retail_seg.core.cleaning import clean_transactions
from retail_seg.core.mappings import MappingError, load_mappings, parse_mapping
from retail_seg.core.sources import load_raw
from retail_seg.core.synthetic import write_synthetic
from retail_seg.core.tables import RAW_TRANSACTIONS, REJECTED_ROWS, STAGING_TRANSACTIONS
from retail_seg.core.warehouse import publish, read_table
from retail_seg_tests.conftest import SHARED_DATA
from retail_seg_tests.pipeline import materialize_all, query

KEY = "test-secret"

# Shopify's orders export header, as the export writes it (one row per line item; order-level fields
# only on an order's first row).
SHOPIFY_HEADER = [
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Billing Street",
    "Billing Address1",
    "Billing Address2",
    "Billing Company",
    "Billing City",
    "Billing Zip",
    "Billing Province",
    "Billing Country",
    "Billing Phone",
]


def _shopify_row(name, lineitem, first: dict | None = None) -> dict:
    row = dict.fromkeys(SHOPIFY_HEADER, "")
    row.update({"Name": name, **lineitem})
    row.update(first or {})
    return row


def _write_dicts(path: Path, header: list[str], rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _stage(conn, path: Path, mappings=None):
    loaded = load_raw(conn, path, load_id="L", mappings=mappings, id_key=KEY)
    publish(conn, RAW_TRANSACTIONS)
    mapping = loaded.format
    result = clean_transactions(conn, run_date=dt.date(2026, 1, 1), mapping=mapping)
    publish(conn, STAGING_TRANSACTIONS, REJECTED_ROWS)
    clean = read_table(conn, STAGING_TRANSACTIONS).sort_values(["invoice_no", "source_row"])
    return loaded, result, clean.reset_index(drop=True)


def test_a_shopify_orders_export(conn, tmp_path):
    def item(quantity, name, price, sku):
        return {
            "Lineitem quantity": quantity,
            "Lineitem name": name,
            "Lineitem price": price,
            "Lineitem sku": sku,
        }

    order = {"Currency": "EUR", "Billing Country": "FR"}
    rows = [
        _shopify_row(
            "#1001",
            item(3, "Masque", "34.90", "M-1"),
            {
                **order,
                "Email": "Sophie@Example.com",
                "Financial Status": "paid",
                "Created at": "2025-10-07 09:50:26 +0200",
            },
        ),
        _shopify_row("#1001", item(1, "Serum", "19.00", "S-2")),
        _shopify_row(
            "#1002",
            item(2, "Creme", "12.50", "C-3"),
            {
                **order,
                "Email": "bob@example.com",
                "Financial Status": "refunded",
                "Created at": "2025-10-08 10:00:00 +0200",
            },
        ),
        _shopify_row(
            "#1003",
            item(1, "Masque", "34.90", "M-1"),
            {
                **order,
                "Email": "sophie@example.com",
                "Financial Status": "partially_refunded",
                "Created at": "2025-11-01 23:30:00 -0500",
            },
        ),
    ]
    loaded, result, clean = _stage(conn, _write_dicts(tmp_path / "orders_export.csv", SHOPIFY_HEADER, rows))
    assert loaded.format.name == "shopify_orders"
    assert result.rejected_by_rule == {"cancelled_order": 1}  # the order refunded in full was not bought
    assert clean["invoice_no"].tolist() == ["#1001", "#1001", "#1003"]
    # The second line of #1001 takes its order's customer, date and country from the first line.
    assert clean["customer_id"].nunique() == 1  # the same person, whatever the case of her address
    assert clean["invoice_date"].tolist() == [pd.Timestamp("2025-10-07 07:50:26")] * 2 + [
        pd.Timestamp("2025-11-02 04:30:00")
    ]  # UTC
    assert clean["country"].tolist() == ["FR"] * 3
    assert clean["line_total"].astype(float).tolist() == [104.70, 19.00, 34.90]
    # The address never reaches the warehouse: only its keyed hash.
    for table in (RAW_TRANSACTIONS, STAGING_TRANSACTIONS, REJECTED_ROWS):
        text = read_table(conn, table).astype(str).to_string()
        assert "@" not in text and "example" not in text.lower()
    assert clean["customer_id"].iloc[0].startswith("h") and len(clean["customer_id"].iloc[0]) == 21


def test_a_line_with_no_order_number_takes_no_order_s_values(conn, tmp_path):
    """Order-level values are carried down within an order only. Line items with no order number (a blank
    Name) belong to no order: none takes an order's or another such line's customer or date, so each is
    judged on the values it had."""
    first = {
        "Email": "ann@example.com",
        "Financial Status": "paid",
        "Created at": "2025-10-07 09:50:26 +0200",
    }
    item = {
        "Lineitem quantity": 1,
        "Lineitem name": "Serum",
        "Lineitem price": "19.00",
        "Lineitem sku": "S-2",
    }
    rows = [
        _shopify_row("#1001", item, {**first, "Currency": "EUR"}),
        _shopify_row("", {**item, "Lineitem sku": "S-3"}, {"Email": "bo@example.com"}),
        _shopify_row("  ", {**item, "Lineitem sku": "S-4"}),
        _shopify_row("#1001", {**item, "Lineitem sku": "S-5"}),
    ]
    _, result, clean = _stage(conn, _write_dicts(tmp_path / "orders_export.csv", SHOPIFY_HEADER, rows))
    assert result.rejected_by_rule == {"unparseable_invoice_date": 1, "missing_customer_id": 1}
    assert clean["source_row"].tolist() == [1, 4]  # the order's own second line still takes its values
    assert clean["customer_id"].nunique() == 1 and clean["invoice_date"].notna().all()
    rejected = read_table(conn, REJECTED_ROWS).set_index("source_row")
    assert rejected.loc[2, "customer_id"] is not None and rejected.loc[3, "customer_id"] is None
    assert rejected.loc[[2, 3], "invoice_date"].isna().all()


SQUARE_HEADER = [
    "Date",
    "Time",
    "Time Zone",
    "Category",
    "Item",
    "Qty",
    "Price Point Name",
    "SKU",
    "Modifiers Applied",
    "Gross Sales",
    "Discounts",
    "Net Sales",
    "Tax",
    "Transaction ID",
    "Payment ID",
    "Device Name",
    "Notes",
    "Details",
    "Event Type",
    "Location",
    "Dining Option",
    "Customer ID",
    "Customer Name",
    "Customer Reference ID",
]


def test_a_square_item_sales_export_with_line_totals_and_currency_signs(conn, tmp_path):
    def sale(date, qty, net, sku, transaction, customer, event="Payment"):
        row = dict.fromkeys(SQUARE_HEADER, "")
        row.update(
            {
                "Date": date,
                "Time": "10:00:00",
                "Category": "Coffee",
                "Item": sku.title(),
                "Qty": qty,
                "SKU": sku,
                "Net Sales": net,
                "Gross Sales": net,
                "Transaction ID": transaction,
                "Event Type": event,
                "Customer ID": customer,
            }
        )
        return row

    rows = [
        sale("2025-03-01", "2", "$7.00", "LATTE", "T1", "C9"),
        sale("2025-03-01", "1", "$1,250.00", "GRINDER", "T1", "C9"),
        sale("2025-03-02", "3", "$10.00", "MUFFIN", "T2", "C7"),
        sale("2025-03-03", "1", "-$3.50", "LATTE", "T3", "C9", event="Refund"),  # refunds written negative
        sale("2025-03-03", "1", "$3.50", "LATTE", "T4", "C7", event="Refund"),  # ...or positive
    ]
    loaded, result, clean = _stage(conn, _write_dicts(tmp_path / "items.csv", SQUARE_HEADER, rows))
    assert loaded.format.name == "square_item_sales" and result.rejected_by_rule == {}
    by_line = clean.set_index(["invoice_no", "stock_code"])
    assert float(by_line.loc[("T1", "GRINDER"), "line_total"]) == 1250.00  # thousands separator and sign gone
    assert float(by_line.loc[("T2", "MUFFIN"), "line_total"]) == 10.00  # the total kept exactly...
    assert float(by_line.loc[("T2", "MUFFIN"), "unit_price"]) == pytest.approx(3.3333)  # ...the price derived
    refunds = clean[clean["is_return"]]
    assert sorted(refunds["invoice_no"]) == ["T3", "T4"]
    assert (
        refunds["quantity"].tolist() == [-1, -1]
        and refunds["line_total"].astype(float).tolist() == [-3.5] * 2
    )


ERP_MAPPING = """
name = "erp_belege"
description = "A European ERP's sales lines: semicolons, decimal commas, day-first dates, amounts in EUR."

[columns]
invoice_no = "Belegnummer"
invoice_date = "Belegdatum"
customer_id = "Kundennummer"
stock_code = "Artikelnummer"
description = "Bezeichnung"
quantity = "Menge"
unit_price = "Einzelpreis"
country = "Land"
currency = "Waehrung"

[read]
delimiter = ";"

[numbers]
decimal = ","
thousands = "."
strip = ["€"]

[dates]
formats = ["%d.%m.%Y"]

[currency]
code = "EUR"
rates = { CHF = 1.05 }
"""


def test_a_semicolon_erp_export_declared_by_the_user(conn, tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "erp.toml").write_text(ERP_MAPPING)
    header = [
        "Belegnummer",
        "Belegdatum",
        "Kundennummer",
        "Artikelnummer",
        "Bezeichnung",
        "Menge",
        "Einzelpreis",
        "Land",
        "Waehrung",
    ]
    rows = [
        ["RE-1", "03.02.2024", "K1", "A-1", "Stuhl", "2", "1.234,50 €", "DE", "EUR"],
        ["RE-1", "03.02.2024", "K1", "A-2", "Tisch", "1", "99,90", "DE", "EUR"],
        ["RE-2", "12.11.2024", "K2", "A-1", "Stuhl", "1", "1.000,00", "CH", "CHF"],
        ["RE-3", "13.11.2024", "K3", "A-1", "Stuhl", "1", "1.000,00", "US", "USD"],
    ]
    path = tmp_path / "belege.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        writer.writerows(rows)
    loaded, result, clean = _stage(conn, path, mappings=load_mappings(folder))
    assert loaded.format.name == "erp_belege"
    assert result.rejected_by_rule == {"unconvertible_currency": 1}  # USD has no rate: never summed with EUR
    assert clean["invoice_date"].dt.date.tolist() == [dt.date(2024, 2, 3)] * 2 + [dt.date(2024, 11, 12)]
    assert clean["unit_price"].astype(float).tolist() == [1234.50, 99.90, 1050.00]  # CHF converted at 1.05


def _shopify_file(path: Path, currency: str, price: str) -> Path:
    first = {"Currency": currency, "Email": "ann@example.com", "Financial Status": "paid"}
    first["Created at"] = "2025-10-07 09:50:26 +0200"
    item = {"Lineitem quantity": "1", "Lineitem price": price, "Lineitem sku": "A", "Lineitem name": "a"}
    return _write_dicts(path, SHOPIFY_HEADER, [_shopify_row("#1", item, first)])


def test_files_in_different_currencies_are_never_summed(tmp_path):
    """Shopify names each file's currency and no base: a shop's EUR file and its USD file would add up to
    one spend. The second file is refused at its staging gate, saying why and what to declare; the first
    stays the history, and a corrected version of the refused file in the history's currency loads."""
    from retail_seg.core.history import MixedCurrencies, build_history, history_currency
    from retail_seg.core.lake import Lake
    from retail_seg.core.loads import LoadRules, load_file

    lake, rules = Lake(tmp_path / "warehouse.duckdb"), LoadRules(run_date=dt.date(2026, 1, 1))

    def load(name: str, currency: str, price: str):
        path = _shopify_file(tmp_path / name, currency, price)
        return load_file(path, lake, f"{name}@r", "r", rules, load_mappings(), id_key=KEY)

    assert load("eur.csv", "EUR", "100.00").accepted
    refused = load("usd.csv", "USD", "120.00")
    assert refused.refused_at == "staging"
    words = refused.staging_gate.message()
    assert "one history, one currency" in words and "EUR: eur.csv" in words and "USD: usd.csv" in words
    assert "[currency] (code, rates)" in words
    assert sorted(lake.accepted()) == ["eur.csv"]
    assert load("usd.csv", "EUR", "110.00").accepted  # corrected: the same shop's file, in euros
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        build_history(conn, lake, "r")
        [(total,)] = conn.execute(f"SELECT sum(line_total) FROM {STAGING_TRANSACTIONS}").fetchall()
        assert float(total) == 210.0
        assert history_currency(conn, lake) == "EUR"  # what the report shows money in, unless configured
        # A history that holds two currencies anyway (two loads accepted at once) is never published.
        usd = load("dollars.csv", "USD", "1.00")
        assert not usd.accepted
        record = lake.accepted()["eur.csv"]
        (lake.loads / record.load_id / "load.json").write_text(
            (lake.loads / record.load_id / "load.json").read_text().replace('"EUR"', '"USD"')
        )
        mixed = r"one history, one currency: .*EUR: usd\.csv; USD: eur\.csv"
        with pytest.raises(MixedCurrencies, match=mixed):
            build_history(conn, lake, "r2")


def test_conventions_belong_to_the_mapping_that_declares_them(conn, tmp_path):
    """CDNOW's invoice numbers start with C in the canonical columns: those are purchases, not returns."""
    frame = pd.DataFrame(
        {
            "invoice_no": ["CD000001", "CD000002", "CD000003"],
            "stock_code": ["CD", "CD", "M"],
            "description": ["", "", ""],
            "quantity": [1, 2, 1],
            "unit_price": [12.5, 11.0, 9.0],
            "invoice_date": ["1997-01-01", "1997-03-15", "1998-06-30"],
            "customer_id": ["00001", "00001", "00002"],
            "country": ["US"] * 3,
        }
    )
    frame.to_csv(tmp_path / "cdnow.csv", index=False)
    _, result, clean = _stage(conn, tmp_path / "cdnow.csv")
    assert result.rejected_by_rule == {}  # 1997 is a plausible year, and M a product here
    assert not clean["is_return"].any() and clean["quantity"].tolist() == [1, 2, 1]


def _cdnow_like(tmp_path: Path) -> Path:
    """The CDNOW sample in the canonical columns with CD… invoice numbers, or seeded lines shaped like it."""
    sample = SHARED_DATA / "cdnow_sample.txt"
    if sample.is_file():
        raw = pd.read_csv(
            sample,
            sep=r"\s+",
            header=None,
            names=["customer", "id", "date", "cds", "value"],
            dtype={"customer": str, "date": str},
        )
    else:
        rng = pd.Series(range(3000))
        raw = pd.DataFrame(
            {
                "customer": (rng % 400).astype(str).str.zfill(5),
                "date": pd.to_datetime("1997-01-01") + pd.to_timedelta(rng * 7 % 540, unit="D"),
                "cds": rng % 3 + 1,
                "value": 9.99 + rng % 40,
            }
        )
        raw["date"] = raw["date"].dt.strftime("%Y%m%d")
    lines = pd.DataFrame(
        {
            "invoice_no": [f"CD{i:06d}" for i in range(1, len(raw) + 1)],
            "stock_code": "CD",
            "description": "",
            "quantity": raw["cds"].clip(lower=1),
            "unit_price": (raw["value"] / raw["cds"].clip(lower=1)).round(4),
            "invoice_date": pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
            "customer_id": raw["customer"],
            "country": "US",
        }
    )
    path = tmp_path / "cdnow_canonical.csv"
    lines.to_csv(path, index=False)
    return path


def test_cdnow_like_data_is_segmented_with_default_settings(tmp_path):
    source = _cdnow_like(tmp_path)
    result = materialize_all(source, tmp_path)
    assert result.success
    rules = dict(query(tmp_path, "SELECT rule, count(*) FROM staging.rejected_rows GROUP BY rule"))
    # 1997–98 dates load and no `CD…` invoice is a return: the only lines refused are the log's free
    # ones (CDNOW lists a few purchases at $0), under the rule that says so.
    written = pd.read_csv(source)
    free = int((written["unit_price"] <= 0).sum())
    assert rules == ({"non_positive_unit_price": free} if free else {})
    [(lines, returns)] = query(
        tmp_path, "SELECT count(*), count(*) FILTER (WHERE is_return) FROM staging.transactions"
    )
    assert (lines, returns) == (len(written) - free, 0)
    [(segmented, customers)] = query(
        tmp_path,
        "SELECT (SELECT count(*) FROM marts.customer_segments), "
        "(SELECT count(DISTINCT customer_id) FROM staging.transactions)",
    )
    assert segmented > 0.9 * customers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'name = "x"\n[columns]\ninvoice_no = "a"\n',
            "x.toml: [columns]: missing quantity, invoice_date, customer_id",
        ),
        (
            '[columns]\ninvoice_no = "a"\nquantity = "q"\ninvoice_date = "d"\ncustomer_id = "c"\n',
            "x.toml: [columns]: name exactly one of unit_price and line_total",
        ),
        ('[read]\ndelimeter = ";"\n', "x.toml: [read] delimeter: unknown key; known: delimiter, encoding"),
        (
            '[columns]\ninvoice_no = "a"\nquantity = "q"\ninvoice_date = "d"\ncustomer_id = "c"\n'
            'unit_price = "p"\n[numbers]\ndecimal = ";"\n',
            "x.toml: [numbers] decimal: expected '.' or ','",
        ),
        ("not toml at all = = =", "x.toml: not valid TOML"),
    ],
)
def test_a_wrong_mapping_names_its_file_key_and_problem(tmp_path, text, message):
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(MappingError) as error:
        parse_mapping(path)
    assert str(error.value).startswith(message)


def test_the_default_data_still_loads_by_the_canonical_mapping(tmp_path, conn):
    source, _ = write_synthetic(tmp_path / "s", customers=200, seed=1)
    loaded, result, clean = _stage(conn, source)
    assert loaded.format.name == "canonical" and len(clean) > 0
    assert "absurd_quantity" in result.rejected_by_rule  # the generator's entry errors still found
