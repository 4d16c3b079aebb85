"""A one-to-one merge is pandas' own, refused as pandas refuses it when a key repeats."""

import pandas as pd
import pytest

from retail_seg.core.frames import merge_one_to_one

LEFT = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "x": [1, 2, 3]})
RIGHT = pd.DataFrame({"customer_id": ["c3", "c1"], "y": [30, 10]})


@pytest.mark.parametrize("how", ["inner", "left"])
def test_it_is_pandas_merge(how):
    expected = LEFT.merge(RIGHT, on="customer_id", how=how, validate="one_to_one")
    pd.testing.assert_frame_equal(merge_one_to_one(LEFT, RIGHT, how=how), expected)


@pytest.mark.parametrize(
    ("left", "right", "side"),
    [
        (pd.concat([LEFT, LEFT.iloc[[0]]]), RIGHT, "left"),
        (LEFT, pd.concat([RIGHT, RIGHT.iloc[[1]]]), "right"),
        (LEFT, pd.DataFrame({"customer_id": [None, None], "y": [1, 2]}), "right"),
    ],
)
def test_a_repeated_key_is_refused_as_pandas_refuses_it(left, right, side):
    words = f"not unique in {side} dataset; not a one-to-one merge"
    with pytest.raises(pd.errors.MergeError, match=words):
        left.merge(right, on="customer_id", validate="one_to_one")
    with pytest.raises(pd.errors.MergeError, match=words):
        merge_one_to_one(left, right)
