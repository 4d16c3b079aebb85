"""Two runs on different sources started together both succeed, one after the other: what they publish,
record and report is exactly what the same two runs give when run one after the other in that order."""

import time

import dagster as dg

from retail_seg.core.synthetic import write_synthetic
from retail_seg.defs.resources import HELD, RELEASED
from retail_seg_tests.pipeline import materialize_all, query
from retail_seg_tests.runs import published_content, start_run
from retail_seg_tests.servers import project_environment


def test_two_runs_at_once_publish_what_they_would_one_after_the_other(tmp_path, monkeypatch):
    sources = {
        "a": write_synthetic(tmp_path / "a", customers=300, seed=4)[0],
        "b": write_synthetic(tmp_path / "b", customers=250, seed=7)[0],
    }
    together = tmp_path / "together"
    env = project_environment(together, sources["a"])
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    # The instance's storage exists before the runs, as it does after the first `make run` or `make ui`:
    # two processes creating a brand-new SQLite storage at the same moment race on its schema.
    dg.DagsterInstance.get().dispose()
    runs = []
    for name in ("a", "b"):
        runs.append(start_run(env, sources[name], tmp_path / f"{name}.log"))
        time.sleep(0.3)
    for run, name in zip(runs, "ab", strict=True):
        assert run.wait(timeout=300) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        assert "succeeded" in (tmp_path / f"{name}.log").read_text()

    # Each run recorded its own source; their order is the order the warehouse lock gave them.
    recorded = query(together, "SELECT run_id, source_file FROM audit.runs ORDER BY recorded_at")
    assert sorted(source for _, source in recorded) == sorted(str(s) for s in sources.values())
    [(published_source,)] = query(together, "SELECT source_file FROM raw.loads")
    assert published_source == recorded[-1][1]

    # The same two sources one after the other, in that order, in a warehouse of their own.
    apart = tmp_path / "apart"
    for _, source in recorded:
        assert materialize_all(source, apart).success
    assert published_content(together) == published_content(apart)

    # And the two never held the warehouse at once: one took it only after the other gave it back.
    with dg.DagsterInstance.get() as instance:
        held = []
        for run_id, _ in recorded:
            logs = [(log.timestamp, log.user_message) for log in instance.all_logs(run_id)]
            start = next(t for t, message in logs if message.startswith(HELD))
            end = next(t for t, message in logs if message.startswith(RELEASED))
            held.append((start, end))
    (first_start, first_end), (second_start, second_end) = held
    assert first_start < first_end <= second_start < second_end
