"""Celery tasks: thin wrappers that pass ids to the runner, webhooks and maintenance."""

from __future__ import annotations

import uuid

from celery import Task
from sqlalchemy.exc import OperationalError

from seqserve.services.worker import maintenance, webhooks
from seqserve.services.worker.app import app
from seqserve.services.worker.runner import run_job
from seqserve.shared.config import get_settings
from seqserve.shared.queueing import (
    CANARY_TASK,
    DELIVER_WEBHOOK_TASK,
    RECONCILE_TASK,
    RUN_JOB_TASK,
    publish_webhook,
)


@app.task(
    name=RUN_JOB_TASK,
    bind=True,
    # Transient trouble (the database restarting) retries with backoff, capped; past the cap
    # the reconciler still finds the job.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def run_job_task(self: Task, job_id: str, trigger: str | None = None) -> str:
    report = run_job(job_id, trigger)
    for finished in report.webhooks_due:
        publish_webhook(app, finished)
    if report.status == "lease_held":
        # Another attempt holds the job (or held it and died): look again when its lease lapses.
        raise self.retry(countdown=(report.lease_seconds_left or 0) + 0.5, max_retries=None)
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


@app.task(name=CANARY_TASK, bind=True)
def canary_task(self: Task, queue: str) -> str:
    maintenance.record_canary(queue, self.request.hostname or "unknown")
    return queue
