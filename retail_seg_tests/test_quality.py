"""Each gate catches what it promises to, on tables built by hand."""

import datetime as dt

import pytest

from retail_seg.core.quality import features_gate, segments_gate, staging_gate, value_gate
from retail_seg.core.tables import Table

FEATURES = Table("marts", "f")
SEGMENTS = Table("marts", "s")
STAGING = Table("staging", "t")
REJECTED = Table("staging", "r")
VALUE = Table("marts", "v")
MODELS = Table("marts", "m")


@pytest.fixture
def marts(conn):
    conn.execute("CREATE SCHEMA marts")
    conn.execute("CREATE SCHEMA staging")
    return conn


def _features(conn, rows):
    conn.execute(
        f"CREATE OR REPLACE TABLE {FEATURES} "
        "(customer_id VARCHAR, recency_days INT, frequency INT, monetary DOUBLE)"
    )
    conn.executemany(f"INSERT INTO {FEATURES} VALUES (?, ?, ?, ?)", rows)


def _failed_rules(result) -> set[str]:
    return {o.rule for o in result.failures}


GOOD = [("a", 1, 3, 10.0), ("b", 30, 1, 5.5), ("c", 200, 2, 99.0)]


def test_features_gate_passes_sane_features(marts):
    _features(marts, GOOD)
    result = features_gate(marts, FEATURES)
    assert result.passed, result.message()
    assert len(result.outcomes) == 8


def test_features_gate_names_each_broken_rule(marts):
    _features(marts, [*GOOD, ("a", -1, 0, float("nan")), ("d", 5, 2, float("inf")), ("e", 5, 2, -4.0)])
    result = features_gate(marts, FEATURES)
    assert _failed_rules(result) == {
        "one row per customer",
        "recency is zero or more days",
        "frequency is at least one purchase",
        "net spend is a number (not NaN)",
        "net spend is positive and finite",
    }
    spend = next(o for o in result.failures if o.rule == "net spend is positive and finite")
    assert spend.observed.startswith("2 of 5 values fail")  # inf and -4 of six; NaN is the not-null rule's
    assert "features gate failed on marts.f: one row per customer" in result.message()


def test_features_gate_needs_three_customers(marts):
    _features(marts, GOOD[:2])
    assert _failed_rules(features_gate(marts, FEATURES)) == {
        "at least 3 customers with a purchase, enough for two clusters"
    }


def _segments(conn, rows):
    conn.execute(f"CREATE OR REPLACE TABLE {SEGMENTS} (customer_id VARCHAR, cluster INT, segment VARCHAR)")
    conn.executemany(f"INSERT INTO {SEGMENTS} VALUES (?, ?, ?)", rows)


def test_segments_gate(marts):
    _features(marts, GOOD)
    _segments(marts, [("a", 0, "high-value"), ("b", 1, "lapsed"), ("c", 1, "lapsed")])
    assert segments_gate(marts, SEGMENTS, FEATURES, k=2).passed
    _segments(marts, [("a", 0, "high-value"), ("a", 1, "lapsed"), ("x", 3, None)])
    assert _failed_rules(segments_gate(marts, SEGMENTS, FEATURES, k=3)) == {
        "every featured customer has a segment",
        "no segment for a customer without features",
        "each customer has exactly one segment",
        "number of segments equals the chosen k = 3",
        "cluster ids run from 0 to 2",
        "every customer's segment is named",
    }


def test_segments_gate_catches_an_empty_cluster(marts):
    _features(marts, GOOD)
    _segments(marts, [("a", 0, "x"), ("b", 2, "y"), ("c", 2, "y")])
    assert _failed_rules(segments_gate(marts, SEGMENTS, FEATURES, k=3)) == {
        "all 3 clusters have customers (none empty)",
        "number of segments equals the chosen k = 3",
    }


def _value(conn, rows, parameters):
    conn.execute(
        f"CREATE OR REPLACE TABLE {VALUE} "
        "(customer_id VARCHAR, p_alive DOUBLE, expected_purchases DOUBLE, clv DOUBLE)"
    )
    conn.executemany(f"INSERT INTO {VALUE} VALUES (?, ?, ?, ?)", rows)
    conn.execute(f"CREATE OR REPLACE TABLE {MODELS} (model VARCHAR, parameter VARCHAR, value DOUBLE)")
    if parameters:
        conn.executemany(f"INSERT INTO {MODELS} VALUES (?, ?, ?)", parameters)


FITTED = [("bgnbd", "r", 0.24), ("bgnbd", "alpha", 4.4), ("gamma_gamma", "p", 6.3), ("settings", "margin", 0)]
VALUED = [("a", 0.9, 1.2, 50.0), ("b", 0.3, 0.1, 4.0), ("c", 1.0, 0.0, 0.0)]


def test_value_gate_passes_sane_values(marts):
    _features(marts, GOOD)
    _value(marts, VALUED, FITTED)
    result = value_gate(marts, VALUE, MODELS, FEATURES)
    assert result.passed, result.message()


def test_value_gate_names_each_broken_rule(marts):
    _features(marts, GOOD)
    nan, inf = float("nan"), float("inf")
    _value(
        marts,
        [("a", 1.2, 1.0, 50.0), ("b", None, -1.0, inf), ("b", 0.5, 0.1, nan)],
        [*FITTED, ("bgnbd", "a", 0.0), ("gamma_gamma", "q", inf)],
    )
    result = value_gate(marts, VALUE, MODELS, FEATURES)
    assert _failed_rules(result) == {
        "one row per customer",
        "every featured customer is valued",
        "the fitted parameters are finite and positive",
        "p_alive is a probability",
        "p_alive is known for every customer",
        "expected purchases are zero or more",
        "lifetime value is finite and not negative",
        "lifetime value is a number (not NaN)",
    }
    parameters = next(o for o in result.failures if o.rule.startswith("the fitted parameters"))
    assert "bgnbd.a = 0.0" in parameters.observed and "gamma_gamma.q = inf" in parameters.observed
    probability = next(o for o in result.failures if o.rule == "p_alive is a probability")
    assert probability.observed.startswith("1 of 2 values fail")  # 1.2; the missing one is the next rule's


def test_value_gate_holds_unfitted_values_empty(marts):
    _features(marts, GOOD)
    _value(marts, [("a", None, None, None), ("b", None, None, None), ("c", 0.5, None, None)], [])
    result = value_gate(marts, VALUE, MODELS, FEATURES, not_fitted="3 repeat buyers, 20 needed")
    assert _failed_rules(result) == {"without fitted models, no customer is valued"}


def _staging(conn, rows, rejected=0):
    conn.execute(
        f"CREATE OR REPLACE TABLE {STAGING} (invoice_no VARCHAR, stock_code VARCHAR, description VARCHAR, "
        "quantity BIGINT, unit_price DECIMAL(18, 4), invoice_date TIMESTAMP, customer_id VARCHAR, "
        "country VARCHAR, is_return BOOLEAN)"
    )
    conn.executemany(f"INSERT INTO {STAGING} VALUES (?, 'S', 'MUG', ?, ?, ?, ?, 'UK', ?)", rows)
    conn.execute(
        f"CREATE OR REPLACE TABLE {REJECTED} AS SELECT range AS source_row FROM range(?)", [rejected]
    )


def test_staging_gate(marts):
    day = dt.datetime(2024, 5, 1)
    good = [("1", 2, 1.5, day, "a", False), ("C2", -1, 1.5, day, "a", True)]
    _staging(marts, good, rejected=1)
    kwargs = {"run_date": dt.date(2024, 6, 1), "earliest_date": dt.date(2000, 1, 1)}
    assert staging_gate(marts, STAGING, REJECTED, **kwargs).passed
    bad = [
        *good,
        good[0],
        ("3", 0, 0.0, dt.datetime(2030, 1, 1), None, False),
        ("C4", 2, 1.0, day, "b", True),
    ]
    _staging(marts, bad, rejected=20)
    assert _failed_rules(staging_gate(marts, STAGING, REJECTED, **kwargs)) == {
        "each invoice line appears once",
        "invoice dates between 2000-01-01 and the run date 2024-06-01",
        "at most 75% of lines rejected",
        "every line has a customer id",
        "sales have a quantity of at least 1",
        "returns have a negative quantity",
        "unit prices are above zero",
    }
