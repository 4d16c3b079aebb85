"""Customers in well-separated behaviour groups, for clustering tests."""

import numpy as np
import pandas as pd

from retail_seg.core.preprocessing import Choices, preprocess


def blobs(sizes, centres, seed=0, spread=0.15) -> pd.DataFrame:
    """Customer features around (recency, frequency, monetary) centres, log-normally spread, with a group."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, (size, (r, f, m)) in enumerate(zip(sizes, centres, strict=True)):
        rows.append(
            pd.DataFrame(
                {
                    "recency_days": np.round(np.exp(rng.normal(np.log(r), spread, size))),
                    "frequency": np.maximum(1, np.round(np.exp(rng.normal(np.log(f), spread, size)))),
                    "monetary": np.exp(rng.normal(np.log(m), spread, size)),
                    "group": group,
                }
            )
        )
    data = pd.concat(rows, ignore_index=True)
    return data.assign(customer_id=[f"c{i}" for i in range(len(data))])


def matrix(data: pd.DataFrame) -> np.ndarray:
    """The default model input for blob customers."""
    return preprocess(data, None, Choices()).matrix


THREE_GROUPS = ([300, 200, 250], [(5, 30, 5000), (300, 3, 200), (40, 1, 40)])
