"""Publications on their own: the paths they may replace, links that survive linked folders, telling a
dead run's process from a live one, and selections that could publish a mixture."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from retail_seg.core.publication import Owner, PublicationError, Publications
from retail_seg.core.synthetic import write_synthetic
from retail_seg.definitions import ASSETS
from retail_seg.defs.runs import release_dead_runs
from retail_seg_tests.pipeline import materialize_all, resources


def _publish_once(publications: Publications, run_id: str = "run-1") -> None:
    lock = publications.lock(Owner.this_process(run_id))
    lock.acquire(on_wait=print)
    workspace = publications.begin(run_id)
    duckdb.connect(str(workspace.database)).execute("CREATE TABLE t AS SELECT 42 AS x").close()
    (workspace.reports / "index.html").write_text("report of " + run_id)
    publications.publish(workspace)
    lock.release()


def test_a_folder_that_is_not_a_report_is_never_replaced(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "precious.txt").write_text("keep me")
    publications = Publications(tmp_path / "warehouse.duckdb", site)
    with pytest.raises(PublicationError, match="not this warehouse's published reports"):
        publications.begin("run-1")
    assert (site / "precious.txt").read_text() == "keep me"


def test_links_work_through_a_linked_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    publications = Publications(tmp_path / "via" / "warehouse.duckdb", tmp_path / "via" / "out" / "reports")
    _publish_once(publications)
    assert (tmp_path / "via" / "out" / "reports" / "index.html").read_text() == "report of run-1"
    with duckdb.connect(str(tmp_path / "via" / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]


def test_a_warehouse_and_report_from_before_publications_become_the_first_base(tmp_path):
    duckdb.connect(str(tmp_path / "warehouse.duckdb")).execute("CREATE TABLE old AS SELECT 1 AS y").close()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.html").write_text("old report")
    publications = Publications(tmp_path / "warehouse.duckdb", tmp_path / "reports")
    _publish_once(publications)
    assert (tmp_path / "warehouse.duckdb").is_symlink() and (tmp_path / "reports").is_symlink()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT y FROM old").fetchall() == [(1,)]  # carried into the publication
    assert (tmp_path / "reports" / "index.html").read_text() == "report of run-1"


def test_only_a_process_that_can_be_looked_at_is_judged(tmp_path):
    me = Owner.this_process("me")
    assert me.alive() is True
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = dataclasses.replace(me, pid=int(gone.stdout))
    assert dead.alive() is False  # same machine, that pid is no longer the process it was
    assert dataclasses.replace(dead, host="another-host").alive() is None
    assert dataclasses.replace(dead, machine="another-namespace").alive() is None
    assert dataclasses.replace(dead, process_start="").alive() is None  # recorded where /proc was missing


def test_tags_copied_from_a_dead_parent_do_not_release_a_live_run():
    dead = dataclasses.replace(Owner.this_process("parent"), pid=2**22 + 7, process_start="1")
    with dg.instance_for_test() as instance:
        run = instance.add_run(
            dg.DagsterRun(
                job_name="segment_customers",
                run_id="child",
                tags=dead.as_tags(),
                status=dg.DagsterRunStatus.STARTED,
            )
        )
        assert release_dead_runs(instance, print) == []
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        instance.add_run_tags(run.run_id, dataclasses.replace(dead, run_id="child").as_tags())
        assert release_dead_runs(instance, print) == ["child"]
        assert instance.get_run_by_id("child").status == dg.DagsterRunStatus.FAILURE


def test_a_selection_that_leaves_out_what_depends_on_it_is_refused(tmp_path):
    source, _ = write_synthetic(tmp_path / "source", customers=200, seed=3)
    assert materialize_all(source, tmp_path).success
    before = os.readlink(tmp_path / ".warehouse.publications" / "current")
    result = dg.materialize(
        ASSETS,
        selection=["transaction_history", "publication"],
        resources=resources(source, tmp_path),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert "leaves out assets that depend on what it builds" in message and "customers" in message
    assert os.readlink(tmp_path / ".warehouse.publications" / "current") == before
