"""Periodic upkeep (scheduled by beat): re-publish stranded jobs; prove queues are consumed."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.orm import Session

from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import JobStatus, QueueHeartbeat
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.metrics import JOBS_REQUEUED_TOTAL, RECONCILE_LAST_RUN
from seqserve.shared.queueing import publish_job

log = logging.getLogger(__name__)


def reconcile(celery: Celery, settings: Settings) -> int:
    """Publish again every job whose message may be lost (a broker restart, a worker that
    died holding it). Duplicates are harmless: claims are conditional."""
    with session_scope() as session:
        jobs = [(job.id, job.priority, job.status) for job in jobs_repo.stranded(session, settings.requeue_after_seconds)]
    for job_id, priority, status in jobs:
        publish_job(celery, str(job_id), priority)
        reason = "lease_expired" if status == JobStatus.running.value else "stale_queued"
        JOBS_REQUEUED_TOTAL.labels(reason).inc()
    with session_scope() as session:
        jobs_repo.mark_enqueued(session, [job_id for job_id, _, _ in jobs])
    if jobs:
        log.warning("re-published %d stranded jobs", len(jobs))
    RECONCILE_LAST_RUN.set_to_current_time()
    return len(jobs)


def _heartbeat(session: Session, queue: str) -> QueueHeartbeat:
    row = session.get(QueueHeartbeat, queue, with_for_update=True)
    if row is None:
        row = QueueHeartbeat(queue=queue)
        session.add(row)
    return row


def record_canary(queue: str, worker: str) -> None:
    with session_scope() as session:
        row = _heartbeat(session, queue)
        row.consumed_at = utcnow()
        row.worker = worker
