"""Periodic upkeep (scheduled by beat): wake the groups of stranded jobs; prove queues are consumed."""

from __future__ import annotations

import logging
from functools import partial

from celery import Celery
from redis import Redis
from sqlalchemy.orm import Session

from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import JobStatus, QueueHeartbeat
from seqserve.shared.db.session import after_commit, session_scope
from seqserve.shared.jobs import lifecycle
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.metrics import JOBS_EXPIRED_TOTAL, JOBS_PURGED_TOTAL, JOBS_REQUEUED_TOTAL, RECONCILE_LAST_RUN
from seqserve.shared.notify import JobsFinished, publish_finished
from seqserve.shared.queueing import Wakeup, publish_wakeup, publish_webhook
from seqserve.shared.rollouts import promotion

log = logging.getLogger(__name__)


def reconcile(celery: Celery, settings: Settings) -> int:
    """Wake the group of every job whose wake-up may be lost (a broker restart, a worker that
    died holding it): one message per group and priority, sent once the jobs are marked (a
    claim skips rows another transaction holds locked, so none may be held when the wake-up
    looks). Extra wake-ups are harmless: an empty group costs one claim that finds nothing.
    Returns the number of such jobs."""
    with session_scope() as session:
        jobs = jobs_repo.stranded(session, settings.requeue_after_seconds)
        wakeups = {Wakeup(version_id=job.model_version_id, kind=job.kind, batch_key=job.batch_key,
                          priority=job.priority, recover=job.status == JobStatus.running.value) for job in jobs}
        for job in jobs:
            reason = "lease_expired" if job.status == JobStatus.running.value else "stale_queued"
            JOBS_REQUEUED_TOTAL.labels(reason).inc()
        jobs_repo.mark_enqueued(session, [job.id for job in jobs])
        for wakeup in wakeups:
            after_commit(session).add(partial(publish_wakeup, celery, wakeup))
    if jobs:
        log.warning("woke the groups of %d stranded jobs", len(jobs))
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


def sweep_jobs(celery: Celery, redis: Redis | None, settings: Settings) -> tuple[int, int]:
    """Expire queued jobs past their deadline (waiters and webhooks hear of it once that is
    committed), then purge finished jobs past retention; at most `job_sweep_batch` of each
    per sweep, so a backlog drains over several sweeps without one long transaction. Last,
    abandon pending promotions past their warm-up deadline (shared/rollouts/promotion.py)."""
    with session_scope() as session:
        expired = lifecycle.expire_due(session, utcnow(), settings.job_sweep_batch)
        if expired:
            publisher = after_commit(session)
            publisher.add(partial(publish_finished, redis, JobsFinished(ids=[str(job.id) for job in expired])))
            for job in expired:
                if job.has_webhook:
                    publisher.add(partial(publish_webhook, celery, str(job.id)))
    for job in expired:
        JOBS_EXPIRED_TOTAL.labels(job.kind).inc()
    with session_scope() as session:
        purged = lifecycle.purge_due(session, settings, utcnow(), settings.job_sweep_batch)
    JOBS_PURGED_TOTAL.inc(purged)
    if expired or purged:
        log.info("expired %d queued jobs, purged %d finished ones", len(expired), purged)
    with session_scope() as session:  # promotions that no API process is waiting for any more
        abandoned = promotion.abandon_stale(session, utcnow(), settings.rollout_warmup_timeout_seconds)
    if abandoned:
        log.warning("abandoned pending promotions of %s: the API process that waited for them is gone",
                    ", ".join(abandoned))
    return len(expired), purged
