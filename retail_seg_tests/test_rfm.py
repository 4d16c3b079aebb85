"""The R × F segment map covers every score cell exactly once; quintile scores survive ties and tiny sets."""

import duckdb
import pytest

from retail_seg.core.rfm import SEGMENT_MAP, quintile_scores_sql, rfm_segment, segment_sql

# Row r (recency score 5 first), column f (frequency score 1..5): the published map, cell by cell.
EXPECTED = {
    5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"],
    3: ["About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
}
CELLS = [(r, f) for r in range(1, 6) for f in range(1, 6)]


@pytest.mark.parametrize(("r", "f"), CELLS)
def test_each_cell_maps_to_exactly_one_segment(r, f):
    assert sum(rule.covers(r, f) for rule in SEGMENT_MAP) == 1
    assert rfm_segment(r, f) == EXPECTED[r][f - 1]


def test_the_map_names_ten_segments():
    assert len({rule.name for rule in SEGMENT_MAP}) == 10
    assert {rfm_segment(r, f) for r, f in CELLS} == {rule.name for rule in SEGMENT_MAP}


def test_sql_map_agrees_with_python_on_every_cell():
    rows = duckdb.sql(
        f"SELECT r_score, f_score, {segment_sql()} FROM range(1, 6) r(r_score), range(1, 6) f(f_score)"
    ).fetchall()
    assert len(rows) == 25
    assert all(name == rfm_segment(r, f) for r, f, name in rows)


def test_out_of_range_scores_are_an_error():
    with pytest.raises(ValueError, match="R=6, F=1 matches 0 segments"):
        rfm_segment(6, 1)


def _scores(values, higher_is_better=True):
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t (v DOUBLE)")
    conn.executemany("INSERT INTO t VALUES (?)", [[v] for v in values])
    scores = quintile_scores_sql("t", "v", higher_is_better)
    rows = conn.execute(f"SELECT v, score FROM t JOIN ({scores}) USING (v) ORDER BY v").fetchall()
    return [score for _, score in rows]


def test_quintiles_of_distinct_values_are_even():
    assert _scores(range(10)) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert _scores(range(10), higher_is_better=False) == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_ties_share_a_score():
    # Six of ten customers bought once: they must all score the same, whatever the quintile edges.
    scores = _scores([1, 1, 1, 1, 1, 1, 2, 3, 8, 20])
    assert scores[:6] == [1] * 6
    assert scores[6:] == [4, 4, 5, 5]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_customer_counts_still_score_within_1_to_5(n):
    scores = _scores(range(n))
    assert all(1 <= s <= 5 for s in scores)
    assert scores == sorted(scores)
