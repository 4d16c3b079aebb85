"""Segment identity: an id follows the customers a segment holds, not its number or its name."""

import json

import pandas as pd
import pytest

from retail_seg.core import segmentation
from retail_seg.core.drift import DRIFT_CHECKS
from retail_seg.core.identity import assign_ids
from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.pipeline import materialize_all, query


def _assignment(groups: dict[str, list[str]], key: str) -> pd.DataFrame:
    """customer_id and `key` (cluster or segment_id) with a segment name, one row per customer."""
    rows = [(c, group, f"name of {group}") for group, members in groups.items() for c in members]
    return pd.DataFrame(rows, columns=["customer_id", key, "segment"])


def _customers(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


PREVIOUS = _assignment(
    {"S1": _customers("a", 50), "S2": _customers("b", 40), "S3": _customers("c", 30)}, "segment_id"
)


def test_permuted_and_renamed_clusters_keep_their_ids():
    now = _assignment({2: _customers("a", 50), 0: _customers("b", 40), 1: _customers("c", 30)}, "cluster")
    now["segment"] = now["cluster"].map({0: "frequent", 1: "lapsed", 2: "champions"})
    found = assign_ids(now, PREVIOUS)
    assert found.ids == {2: "S1", 0: "S2", 1: "S3"}
    assert set(found.events["event"]) == {"renamed"}
    assert found.events.set_index("segment_id").loc["S1", "previous_segment"] == "name of S1"


def test_same_customers_same_names_are_kept():
    now = _assignment({0: _customers("a", 50), 1: _customers("b", 40), 2: _customers("c", 30)}, "cluster")
    now["segment"] = now["cluster"].map({0: "name of S1", 1: "name of S2", 2: "name of S3"})
    found = assign_ids(now, PREVIOUS)
    assert found.ids == {0: "S1", 1: "S2", 2: "S3"} and set(found.events["event"]) == {"kept"}


def test_a_segment_that_splits_keeps_its_id_in_the_larger_part_and_a_gone_one_retires():
    a = _customers("a", 50)
    now = _assignment(
        {0: a[:35] + _customers("new", 20), 1: a[35:] + _customers("b", 5), 2: _customers("b", 40)[5:]},
        "cluster",
    )
    found = assign_ids(now, PREVIOUS, known=["S1", "S2", "S3", "S4"])
    assert found.ids[0] == "S1" and found.ids[2] == "S2"
    assert found.ids[1] == "S5"  # new, and never a retired or earlier id
    events = found.events.set_index("segment_id")["event"].to_dict()
    assert events == {"S1": "renamed", "S2": "renamed", "S5": "created", "S3": "retired"}


def test_a_first_run_numbers_its_segments():
    now = _assignment({0: ["x"], 1: ["y"]}, "cluster")
    found = assign_ids(now, None)
    assert found.ids == {0: "S1", 1: "S2"} and set(found.events["event"]) == {"created"}


# Two runs a month apart (the second a month after the data ends, every customer a month older), then the
# second month again with another seed and the clusters' internal numbering reversed: the ids must follow
# the customers, not the numbers or the draw.
@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("identity")
    source, planted = write_synthetic(workdir / "source", customers=1200, seed=5)
    first = materialize_all(source, workdir, run_config=_config("2025-12-01", seed=42))
    second = materialize_all(source, workdir, run_config=_config("2025-12-31", seed=42))
    with pytest.MonkeyPatch.context() as patch:
        reverse = segmentation.order_by_value
        patch.setattr(segmentation, "order_by_value", lambda labels, spend: reverse(labels, -spend))
        third = materialize_all(source, workdir, run_config=_config("2025-12-31", seed=7))
    assert first.success and second.success and third.success
    truth = pd.read_csv(planted, dtype={"customer_id": str})
    return workdir, truth, [first.run_id, second.run_id, third.run_id]


def _config(as_of: str, seed: int) -> dict:
    return {
        "ops": {
            "customer_features": {"config": {"as_of": as_of}},
            "segmentation": {"config": {"seed": seed}},
        }
    }


def _run(workdir, run_id: str) -> pd.DataFrame:
    return pd.DataFrame(
        query(
            workdir,
            "SELECT customer_id, segment_id, cluster, segment FROM audit.segment_history "
            f"WHERE run_id = '{run_id}'",
        ),
        columns=["customer_id", "segment_id", "cluster", "segment"],
    )


def test_every_planted_group_keeps_its_id_across_runs_seeds_and_numbering(three_runs):
    workdir, truth, runs = three_runs
    ids, clusters = [], []
    for run_id in runs:
        placed = _run(workdir, run_id).merge(truth, on="customer_id")
        ids.append(placed.groupby("group")["segment_id"].agg(lambda s: s.mode()[0]))
        clusters.append(placed.groupby("group")["cluster"].agg(lambda s: s.mode()[0]))
    assert ids[0].nunique() == len(ids[0]) == 6  # one id per planted group
    assert ids[0].equals(ids[1]) and ids[1].equals(ids[2])
    assert not clusters[1].equals(clusters[2])  # the numbering did change under the ids
    events = query(workdir, f"SELECT event FROM audit.segment_events WHERE run_id = '{runs[2]}'")
    assert {e for (e,) in events} <= {"kept", "renamed"}


def test_relabelling_alone_moves_no_one(three_runs):
    workdir, _, runs = three_runs
    moved = query(
        workdir,
        "SELECT sum(customers) FILTER (WHERE from_segment_id <> to_segment_id), sum(customers), "
        "any_value(previous_run) FROM marts.segment_migration",
    )
    [(off_diagonal, total, previous)] = moved
    assert previous == runs[1] and total > 1000
    # The same customers, the same as-of date, only another seed and numbering: nobody moved.
    assert off_diagonal in (None, 0) or off_diagonal / total < 0.01


def test_a_quiet_rerun_raises_no_drift_warning_and_every_check_is_recorded(three_runs):
    workdir, _, runs = three_runs
    [(drift,)] = query(workdir, f"SELECT drift FROM audit.runs WHERE run_id = '{runs[2]}'")
    recorded = {entry["check"]: entry for entry in json.loads(drift)}
    assert set(recorded) == set(DRIFT_CHECKS)
    # The second month again, another seed and another numbering: nothing drifted.
    assert all(entry["passed"] for entry in recorded.values()), recorded
    [(first,)] = query(workdir, f"SELECT drift FROM audit.runs WHERE run_id = '{runs[0]}'")
    assert all("no previous run" in entry["words"] for entry in json.loads(first))
