"""The distributed profile: each file's load a step on Celery workers, over a Redis broker.

Chosen by configuration alone (`RETAIL_SEG_EXECUTOR=celery`, the broker and backend in
`RETAIL_SEG_CELERY_*`); the default runs everything in the run's own process. Only loads go to the
workers: they share nothing (each writes its own folder of the lake), so any number run at once on any
host. A publication stays one process, the warehouse's single writer (DuckDB takes one per file), and
publications never interleave; the instance's run queue keeps them one at a time.

Workers run this module's app: `celery -A retail_seg.defs.distributed worker -Q dagster`. A task is
acknowledged only when it ends (`task_acks_late`), so a load whose worker is killed is not lost: Redis
gives it to another worker `RETAIL_SEG_CELERY_REDELIVER_SECONDS` later, and the load, built aside under
an id of its own, starts again from the file.
"""

from __future__ import annotations

import functools

import dagster as dg

from retail_seg import settings

IN_PROCESS, CELERY = "in_process", "celery"
QUEUE = "dagster"  # dagster-celery's queue: the workers listen on it


def executor_name() -> str:
    """RETAIL_SEG_EXECUTOR, checked."""
    name = settings.EXECUTOR.value()
    if name not in (IN_PROCESS, CELERY):
        raise ValueError(
            f"{settings.EXECUTOR.variable}: {name!r} is not an executor; use {IN_PROCESS} or {CELERY}"
        )
    return name


def _redeliver_seconds() -> int:
    value = settings.CELERY_REDELIVER_SECONDS.value()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"{settings.CELERY_REDELIVER_SECONDS.variable}: {value!r} is not a number of seconds"
        )
    return int(value)


def celery_config() -> dict:
    """The Celery executor's configuration, shared by the runs that submit loads and the workers."""
    return {
        "broker": settings.CELERY_BROKER.value(),
        "backend": settings.CELERY_BACKEND.value(),
        "config_source": {
            # Acknowledged when done, not when taken: a worker killed mid-load loses nothing.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # One load at a time per worker process: a worker never holds loads another could start.
            "worker_prefetch_multiplier": 1,
            "broker_transport_options": {"visibility_timeout": _redeliver_seconds()},
            "result_expires": 7 * 24 * 3600,
        },
    }


def load_executor() -> dg.ExecutorDefinition:
    """The executor of the runs that load files: in process by default, Celery in the distributed profile."""
    if executor_name() == IN_PROCESS:
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(), name="celery")


@functools.cache
def worker_app():
    """The Celery app the workers run, with the task that executes a Dagster step."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    config = celery_config()
    app = make_app(CeleryExecutor.for_cli(**config).app_args())
    create_task(app)
    return app


def __getattr__(name: str):
    # `celery -A retail_seg.defs.distributed` looks for `app` (or `celery`): made when asked for, so that
    # importing the module never needs the optional packages.
    if name in ("app", "celery"):
        return worker_app()
    raise AttributeError(name)
