"""What the pure core needs from pandas beyond pandas itself."""

from __future__ import annotations

from typing import Literal

import pandas as pd


def merge_one_to_one(
    left: pd.DataFrame, right: pd.DataFrame, on: str = "customer_id", how: Literal["inner", "left"] = "inner"
) -> pd.DataFrame:
    """`left.merge(right, on=on, how=how, validate="one_to_one")`, at a fraction of its cost.

    pandas validates by building a MultiIndex of each side's keys: at 340,000 customer ids that took
    about 1 s a merge, nine times the merge itself. A key unique on both sides is the same guarantee,
    and the same error when it does not hold.
    """
    for side, frame in (("left", left), ("right", right)):
        if not frame[on].is_unique:
            raise pd.errors.MergeError(
                f"Merge keys are not unique in {side} dataset; not a one-to-one merge ({on})"
            )
    return left.merge(right, on=on, how=how)
