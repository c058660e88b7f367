"""Celery tasks: thin wrappers that hand their message to the runner, webhooks and maintenance."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from seqserve.services.worker import batch_driver, maintenance, webhooks
from seqserve.services.worker.app import app
from seqserve.services.worker.context import worker_context
from seqserve.services.worker.runner import run_wakeup
from seqserve.shared.config import get_settings
from seqserve.shared.jobs.lifecycle import SWEEP_JOBS_TASK
from seqserve.shared.queueing import (
    ADVANCE_BATCHES_TASK,
    CANARY_TASK,
    DELIVER_WEBHOOK_TASK,
    RECONCILE_TASK,
    RUN_BATCHES_TASK,
    Wakeup,
    publish_webhook,
)


@app.task(
    name=RUN_BATCHES_TASK,
    bind=True,
    # Transient trouble (the database restarting) retries with backoff, capped; past the cap
    # the reconciler still finds the jobs.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def run_batches_task(self: Task, **message: Any) -> str:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    report = run_wakeup(Wakeup.model_validate(message), worker_context(app), redelivered)
    if report.retry_in is not None:
        # This message's worker died mid-batch: come back when the dead attempt's lease lapses,
        # to put its jobs back in the queue and run them.
        raise self.retry(kwargs=message | {"recover": True}, countdown=report.retry_in + 0.5, max_retries=None)
    return report.status


@app.task(name=DELIVER_WEBHOOK_TASK)
def deliver_webhook_task(job_id: str) -> bool:
    result = webhooks.deliver(uuid.UUID(job_id), get_settings())
    if result.retry_in is not None:
        publish_webhook(app, job_id, countdown=result.retry_in)
    return result.delivered


@app.task(name=RECONCILE_TASK)
def reconcile_task() -> int:
    return maintenance.reconcile(app, get_settings())


@app.task(name=SWEEP_JOBS_TASK)
def sweep_jobs_task() -> list[int]:
    context = worker_context(app)
    return list(maintenance.sweep_jobs(app, context.redis, context.settings))


@app.task(name=CANARY_TASK, bind=True)
def canary_task(self: Task, queue: str) -> str:
    maintenance.record_canary(queue, self.request.hostname or "unknown")
    return queue


@app.task(name=ADVANCE_BATCHES_TASK)
def advance_batches_task(batch_id: str | None = None) -> int:
    """One driver step for one batch (right after it was created) or for every open one (beat)."""
    settings, redis = get_settings(), worker_context(app).redis
    if batch_id is not None:
        batch_driver.step_started(redis, uuid.UUID(batch_id))
        batch_driver.advance(uuid.UUID(batch_id), app, settings, redis)
        return 1
    return batch_driver.advance_all(app, settings, redis)
