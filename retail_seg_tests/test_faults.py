"""A run is a unit, proven with real processes and real signals: `kill -9` at several offsets inside each
step, and between the run's last write and its swap, changes nothing published; the next run clears what
the dead one left and succeeds unaided."""

from __future__ import annotations

import os
import time

import duckdb
import pytest

from retail_seg.core.lake import Lake
from retail_seg.core.publication import PAUSE_VARIABLE, PAUSED
from retail_seg.core.sources import file_sha256
from retail_seg.core.synthetic import write_synthetic
from retail_seg_tests.pipeline import query
from retail_seg_tests.runs import (
    kill_group,
    published_state,
    run_status,
    start_run,
    started_step,
    wait_for,
)
from retail_seg_tests.servers import project_environment

# The steps a kill lands in, and how long after each starts (0: at once; later: inside it, or past it
# into the next step when it is quick, which is a kill point too).
STEPS = (
    "transaction_history",  # loads the new file into the lake first, then builds the history
    "customers",
    "customer_features",
    "segmentation",
    "segment_history",
    "segment_report",
)
OFFSETS = (0.0, 0.4)
KILLED: list[str] = []
# The second export's load, once a killed run got as far as accepting it.
ACCEPTED: list[str] = []
# Kills that landed after the run's swap (a quick step at a late offset): the run was published whole.
PAST_THE_SWAP: list[str] = []


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A warehouse after one good run from the CLI, and a second export the killed runs try to publish."""
    workdir = tmp_path_factory.mktemp("faults")
    first, _ = write_synthetic(workdir / "first", customers=300, seed=11)
    second, _ = write_synthetic(workdir / "second", customers=350, seed=12)
    env = project_environment(workdir, first)
    process = start_run(env, first, workdir / "good.log")
    assert process.wait(timeout=300) == 0, (workdir / "good.log").read_text()[-3000:]
    return workdir, env, (first, second), {"state": published_state(workdir)}


def _lake_is_whole(workdir, first, second) -> str | None:
    """Check the lake after a kill: the file's load in force is one of the two exports, complete (every
    line it counted is in its Parquet), and once the second is accepted it stays (an accepted load is
    durable). Return the load id in force."""
    [record] = Lake(workdir / "warehouse.duckdb").accepted().values()
    assert record.sha256 in (file_sha256(first), file_sha256(second))
    lines, rejected = Lake(workdir / "warehouse.duckdb").files(record)
    clean, refused = (
        duckdb.sql(f"SELECT count(*) FROM read_parquet('{f}')").fetchall()[0][0] for f in (lines, rejected)
    )
    assert (clean, refused) == (record.clean, record.rejected) and clean + refused == record.lines
    if ACCEPTED:
        assert record.load_id == ACCEPTED[0]  # accepted before: durable, whatever the kills since
    elif record.sha256 == file_sha256(second):
        ACCEPTED.append(record.load_id)
    return record.load_id


def _current(workdir) -> str:
    return os.readlink(workdir / ".warehouse.publications" / "current")


def _recorded_runs(workdir) -> list[str]:
    return [row[0] for row in query(workdir, "SELECT run_id FROM audit.runs ORDER BY recorded_at")]


def _publications(workdir):
    return sorted(p.name for p in (workdir / ".warehouse.publications").iterdir())


@pytest.mark.parametrize(("step", "offset"), [(s, o) for s in STEPS for o in OFFSETS])
def test_kill_inside_a_step_changes_nothing_published(world, step, offset, tmp_path):
    workdir, env, (first, second), published = world
    process = start_run(env, second, tmp_path / "run.log")
    home = workdir / "dagster_home"
    try:
        run_id = wait_for(lambda: started_step(home, step, KILLED), timeout=120, what=f"{step} starting")
        time.sleep(offset)
    finally:
        kill_group(process)  # also when the wait fails: a run left going would hold the warehouse
    KILLED.append(run_id)
    if _current(workdir) == run_id:  # killed after its swap: then all of it is published, not a part
        PAST_THE_SWAP.append(run_id)
        assert _recorded_runs(workdir)[-1] == run_id
        assert (workdir / "reports" / "index.html").is_file()
        published["state"] = published_state(workdir)
    assert published_state(workdir) == published["state"]
    _lake_is_whole(workdir, first, second)
    if len(KILLED) > 1:  # this run found the previous dead one, and released it before starting its own
        assert run_status(home, KILLED[-2]).value == "FAILURE"
        log = (tmp_path / "run.log").read_text()
        assert f"released a dead run: run {KILLED[-2]}" in log


@pytest.mark.parametrize("point", ["before-swap"])
def test_kill_between_the_last_write_and_the_swap_changes_nothing_published(world, point, tmp_path):
    workdir, env, (first, second), published = world
    process = start_run(env, second, tmp_path / "run.log", **{PAUSE_VARIABLE: point})
    try:
        wait_for(
            lambda: f"{PAUSED} {point}" in (tmp_path / "run.log").read_text(), 180, f"the pause at {point}"
        )
    finally:
        kill_group(process)  # a paused run holds the publication lock for an hour
    assert published_state(workdir) == published["state"]
    assert _lake_is_whole(workdir, first, second) == ACCEPTED[0]  # the run had loaded it by its swap
    [left] = [name for name in _publications(workdir) if name not in ("current", "lock", _current(workdir))]
    KILLED.append(left)  # the dead run's workspace, which the next run removes


def test_a_kill_after_the_swap_leaves_the_whole_run_published(world, tmp_path):
    workdir, env, (_, second), published = world
    before = _current(workdir)
    process = start_run(env, second, tmp_path / "run.log", **{PAUSE_VARIABLE: "after-swap"})
    try:
        wait_for(
            lambda: f"{PAUSED} after-swap" in (tmp_path / "run.log").read_text(),
            180,
            "the pause after the swap",
        )
    finally:
        kill_group(process)  # a paused run holds the publication lock for an hour
    run_id = _current(workdir)
    assert run_id != before and _recorded_runs(workdir)[-1] == run_id  # this run's tables...
    assert (workdir / "reports").resolve() == (workdir / ".warehouse.publications" / run_id / "reports")
    assert (workdir / "reports" / "index.html").is_file()  # ...and its report, together
    assert (workdir / "exports" / "latest").resolve().name == run_id  # ...and its exports
    assert before in _publications(workdir)  # the publication it replaced, for the next run to remove
    KILLED.append(run_id)
    PAST_THE_SWAP.append(run_id)
    published["state"] = published_state(workdir)


def test_after_the_kills_the_next_run_succeeds_unaided_and_leaves_nothing_behind(world, tmp_path):
    workdir, env, (first, second), published = world
    assert len(PAST_THE_SWAP) <= 3  # nearly every kill landed inside a step (one was meant to land after)
    home = workdir / "dagster_home"
    start = time.monotonic()
    process = start_run(env, second, tmp_path / "run.log")
    try:
        assert process.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        kill_group(process)  # nothing to kill once it has ended; a run still going is stopped
    log = (tmp_path / "run.log").read_text()
    assert time.monotonic() - start < 120
    assert f"released a dead run: run {KILLED[-1]}" in log
    assert "removed what unpublished runs left behind" in log
    # A run killed inside a step failed; one killed past its swap may have finished before the signal.
    assert all(
        run_status(home, run_id).value == "FAILURE" for run_id in KILLED if run_id not in PAST_THE_SWAP
    )
    assert published_state(workdir) != published["state"]  # this run is the current publication now
    assert _publications(workdir) == sorted(["current", "lock", _current(workdir)])
    assert _recorded_runs(workdir)[-1] == _current(workdir)
    [(candidates,)] = query(
        workdir, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '\\_candidate\\_%' ESCAPE '\\'"
    )
    assert candidates == 0
    # The history is the second export's load, accepted once by a killed run and never loaded again; the
    # first export's load it superseded is gone with the publications that read it.
    assert _lake_is_whole(workdir, first, second) == ACCEPTED[0]
    assert query(workdir, "SELECT load_id FROM raw.loads") == [(ACCEPTED[0],)]
    lake = Lake(workdir / "warehouse.duckdb")
    assert sorted(p.name for p in lake.loads.iterdir()) == [ACCEPTED[0]]
