"""Seconds of each step of the latest run in $DAGSTER_HOME, as JSON (read by bench/run.py)."""

import json

import dagster as dg


def main() -> None:
    with dg.DagsterInstance.get() as instance:
        [record] = instance.get_run_records(limit=1)
        events = [e for e in instance.all_logs(record.dagster_run.run_id) if e.is_dagster_event]
    starts = {e.step_key: e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_START"}
    ends = {e.step_key: e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_SUCCESS"}
    print(json.dumps({step: round(ends[step] - start, 2) for step, start in starts.items() if step in ends}))


if __name__ == "__main__":
    main()
