"""Segment identity across runs: a segment keeps its id while it holds the same customers.

Each run re-clusters from scratch, so its cluster numbers and names say nothing about the last run's.
A new run's segments are matched to the previous run's by the customers they share: the pairing that
keeps the most customers where they were (the Hungarian assignment over the overlap counts), and a pair
counts as the same segment only when each holds most of the other's returning customers. A matched
segment keeps its id, whatever its number or name now (a change of name is a rename); an unmatched one
gets a new id; a previous segment no new one matches is retired.

Overlap rather than centroids: "the same segment" means the same customers, and a centroid moves with
every customer the history adds (the features are standardized over the whole base), so centroid
distances would need a threshold in units that drift from run to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

# A pair of segments is one segment when each holds more than this share of the other's customers.
SAME_SEGMENT_SHARE = 0.5
ID_PREFIX = "S"


@dataclass(frozen=True)
class Identity:
    """Each cluster's stable id, and what happened to every segment id since the previous run."""

    ids: dict[int, str]
    events: pd.DataFrame
    """segment_id, event (created, kept, renamed, retired), segment, previous_segment, shared_customers,
    share (of the current segment's returning customers that came from the matched one)"""


def _number(segment_id: str) -> int:
    digits = segment_id.removeprefix(ID_PREFIX)
    return int(digits) if digits.isdigit() else 0


def assign_ids(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    known: list[str] = (),
    same_share: float = SAME_SEGMENT_SHARE,
) -> Identity:
    """Stable ids for the clusters of `current` (customer_id, cluster, segment), matched against
    `previous` (customer_id, segment_id, segment: the last run's assignment, or None on a first run).
    `known` lists every id ever given, so a new segment never reuses a retired one's id."""
    names = current.drop_duplicates("cluster").set_index("cluster")["segment"].sort_index()
    clusters = list(names.index)
    taken = [*known, *([] if previous is None else previous["segment_id"].dropna().unique())]
    next_number = max((_number(i) for i in taken), default=0) + 1
    if previous is None or previous["segment_id"].isna().all():
        ids = {c: f"{ID_PREFIX}{next_number + i}" for i, c in enumerate(clusters)}
        events = [(ids[c], "created", names[c], None, 0, 0.0) for c in clusters]
        return Identity(ids, _events(events))
    before = previous.dropna(subset=["segment_id"])
    old_names = before.drop_duplicates("segment_id").set_index("segment_id")["segment"]
    common = current[["customer_id", "cluster"]].merge(
        before[["customer_id", "segment_id"]], on="customer_id"
    )
    overlap = pd.crosstab(common["cluster"], common["segment_id"]).reindex(index=clusters, fill_value=0)
    overlap = overlap.reindex(columns=sorted(old_names.index, key=_number), fill_value=0)
    rows, columns = linear_sum_assignment(-overlap.to_numpy())
    ids, events = {}, []
    for row, column in zip(rows, columns, strict=True):
        shared = int(overlap.iat[row, column])
        share_now = shared / max(int(overlap.iloc[row].sum()), 1)
        share_then = shared / max(int(overlap.iloc[:, column].sum()), 1)
        if shared and share_now > same_share and share_then > same_share:
            cluster, segment_id = clusters[row], overlap.columns[column]
            ids[cluster] = segment_id
            was = old_names[segment_id]
            events.append(
                (
                    segment_id,
                    "kept" if was == names[cluster] else "renamed",
                    names[cluster],
                    was,
                    shared,
                    round(share_now, 4),
                )
            )
    for cluster in clusters:
        if cluster not in ids:
            ids[cluster] = f"{ID_PREFIX}{next_number}"
            next_number += 1
            returning = int(overlap.loc[cluster].sum())
            events.append((ids[cluster], "created", names[cluster], None, returning, 0.0))
    kept = set(ids.values())
    events += [(i, "retired", None, old_names[i], 0, 0.0) for i in old_names.index if i not in kept]
    return Identity(ids, _events(events))


def _events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["segment_id", "event", "segment", "previous_segment", "shared_customers", "share"]
    )
    return frame.astype({"shared_customers": np.int64, "share": float})
