"""The Celery app the worker and beat run: `seqserve worker` / `seqserve beat`
(or `celery -A seqserve.services.worker.app worker`)."""

from __future__ import annotations

import logging
from typing import Any

from celery.schedules import crontab
from celery.signals import (
    after_setup_logger,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from seqserve.services.worker.device import configure_torch
from seqserve.services.worker.liveness import WorkerHealth
from seqserve.shared import heap
from seqserve.shared.celery_metrics import serve_from_parent
from seqserve.shared.config import RetrainEntry, Settings, get_settings
from seqserve.shared.db.session import dispose_engines
from seqserve.shared.jobs.lifecycle import SWEEP_JOBS_TASK
from seqserve.shared.queueing import (
    ADVANCE_BATCHES_TASK,
    CANARY_TASK,
    INFERENCE_QUEUES,
    MAINTENANCE_QUEUE,
    RECONCILE_TASK,
    make_celery,
)
from seqserve.shared.training import SCHEDULED_TRAINING_TASK, TRAINING_QUEUE

log = logging.getLogger(__name__)

# Celery's lines per message (received, succeeded) and beat's per due task: with a canary per
# inference queue every 5 s they were ~114 lines a minute on the `up` terminal. Shown at DEBUG.
PER_MESSAGE_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


def beat_schedule(settings: Settings) -> dict[str, dict]:
    """Reconcile stranded jobs (and lapsed leases); send each inference queue a canary that
    only a live consumer can answer (GET /v1/queues reports it beside the consumer registry)."""
    schedule: dict[str, dict] = {
        "reconcile-jobs": {
            "task": RECONCILE_TASK, "schedule": settings.reconcile_interval_seconds,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.reconcile_interval_seconds},
        },
    }
    schedule["sweep-jobs"] = {  # deadlines and retention
        "task": SWEEP_JOBS_TASK, "schedule": settings.job_sweep_interval_seconds,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.job_sweep_interval_seconds},
    }
    schedule["advance-batches"] = {  # the corpus batch driver (services/worker/batch_driver.py)
        "task": ADVANCE_BATCHES_TASK, "schedule": settings.batch_driver_interval_seconds,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.batch_driver_interval_seconds},
    }
    for queue in INFERENCE_QUEUES:
        schedule[f"canary-{queue}"] = {
            "task": CANARY_TASK, "schedule": settings.canary_interval_seconds, "args": [queue],
            "options": {"queue": queue, "expires": settings.readiness_window_seconds},
        }
    for number, entry in enumerate(settings.retrain_schedule):
        schedule[f"retrain-{number}-{entry.task}"] = _retrain_entry(entry)
    return schedule


def _retrain_entry(entry: RetrainEntry) -> dict:
    minute, hour, day_of_month, month, day_of_week = entry.cron.split()
    when = entry.every_seconds or crontab(minute, hour, day_of_week, day_of_month, month)
    return {
        "task": SCHEDULED_TRAINING_TASK,
        "schedule": when,
        "kwargs": {"task": entry.task, "preset": entry.preset, "model_name": entry.model_name,
                   "overrides": entry.overrides},
        "options": {"queue": TRAINING_QUEUE},
    }


app = make_celery()
app.conf.beat_schedule = beat_schedule(get_settings())


health = WorkerHealth()  # made before the pool forks: every child ticks the parent's clock
serve_from_parent(lambda: get_settings().worker_metrics_port, "worker", livez=health.report)


@task_prerun.connect
@task_postrun.connect
def _task_progress(**_: object) -> None:
    health.clock.tick()


@worker_ready.connect
def _watch_consumption(sender: Any = None, **_: object) -> None:
    # The consumer knows its name and its queues (-Q) only once it is ready.
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    health.start(get_settings(), getattr(sender, "hostname", None) or "unknown", queues)
    if get_settings().worker_pool == "solo" and any(queue in INFERENCE_QUEUES for queue in queues):
        _start_warmer()  # no child forks: this process runs the jobs


@worker_shutdown.connect
def _leave_registry(**_: object) -> None:
    health.stop()


@after_setup_logger.connect
def _per_message_lines_at_debug(loglevel: int | str | None = None, **_: object) -> None:
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    if not isinstance(level, int) or level > logging.DEBUG:
        for name in PER_MESSAGE_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@worker_init.connect
def _before_pool(**_: object) -> None:
    # The consuming process (and the solo pool's only one), before any child forks: children
    # inherit the frozen heap, so neither side walks torch's and Celery's objects again.
    heap.freeze_startup_objects()


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    # A forked child must not share the parent's database sockets. Models load lazily on the
    # first job, not here: this signal has a 4 s limit.
    dispose_engines()
    configure_torch(get_settings())
    heap.freeze_startup_objects()
    _start_warmer()


def _start_warmer() -> None:
    # The inference process's context, built now rather than on its first message, so that
    # its warm-up thread and its tasks share one model cache.
    from seqserve.services.worker.context import worker_context
    from seqserve.services.worker.warmup import Warmer

    Warmer(worker_context(app)).start()


from seqserve.services.worker import tasks  # noqa: E402,F401  (registers the tasks on `app`)
