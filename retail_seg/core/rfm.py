"""RFM scores (quintiles 1–5) and the ten named segments of the widely used R × F segment map."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentRule:
    """A rectangle of the R × F score grid (inclusive bounds) and the segment it names."""

    name: str
    recency: tuple[int, int]
    frequency: tuple[int, int]

    def covers(self, r: int, f: int) -> bool:
        return self.recency[0] <= r <= self.recency[1] and self.frequency[0] <= f <= self.frequency[1]


# The map popularised by the R `rfm` package and countless marketing write-ups. Recency score 5 is the
# most recent fifth of customers; frequency score 5 the most frequent. Every one of the 25 cells is
# covered by exactly one rule (a test checks each cell).
SEGMENT_MAP = (
    SegmentRule("Champions", (5, 5), (4, 5)),
    SegmentRule("Loyal Customers", (3, 4), (4, 5)),
    SegmentRule("Potential Loyalists", (4, 5), (2, 3)),
    SegmentRule("New Customers", (5, 5), (1, 1)),
    SegmentRule("Promising", (4, 4), (1, 1)),
    SegmentRule("Need Attention", (3, 3), (3, 3)),
    SegmentRule("About to Sleep", (3, 3), (1, 2)),
    SegmentRule("At Risk", (1, 2), (3, 4)),
    SegmentRule("Can't Lose Them", (1, 2), (5, 5)),
    SegmentRule("Hibernating", (1, 2), (1, 2)),
)


def rfm_segment(r: int, f: int) -> str:
    """The named segment of an R and F score."""
    matches = [rule.name for rule in SEGMENT_MAP if rule.covers(r, f)]
    if len(matches) != 1:
        raise ValueError(f"R={r}, F={f} matches {len(matches)} segments, expected exactly one")
    return matches[0]


def segment_sql(r: str = "r_score", f: str = "f_score") -> str:
    """The segment map as a SQL CASE over score columns."""
    cases = " ".join(
        f"WHEN {r} BETWEEN {rule.recency[0]} AND {rule.recency[1]} "
        f"AND {f} BETWEEN {rule.frequency[0]} AND {rule.frequency[1]} THEN {_sql_text(rule.name)}"
        for rule in SEGMENT_MAP
    )
    return f"CASE {cases} END"


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quintile_scores_sql(source: str, column: str, higher_is_better: bool = True) -> str:
    """A query giving each distinct value of `column` in `source` its 1–5 score by rank.

    A value's score is 1 + floor(5 · customers ranked before it / customers), at most 5, so any number
    of customers works. Plain NTILE(5) would split a tie (thousands of one-time buyers) across scores at
    random; here customers with equal values share a rank, so a tied block takes the score of its first
    position and quintiles can be uneven but never arbitrary. Counting per distinct value and summing
    the counts in order is cheaper than ranking every customer.
    """
    order = "ASC" if higher_is_better else "DESC"
    return f"""
        SELECT {column},
               least(5, 1 + CAST(floor(5.0 * (sum(count(*)) OVER (ORDER BY {column} {order}) - count(*))
                                 / sum(count(*)) OVER ()) AS INTEGER)) AS score
        FROM {source}
        GROUP BY {column}
    """
