"""All job queries. State changes are conditional updates, so a redelivered or late message
can never flip a job that has moved on, and only the attempt holding a job writes its result."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, or_, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from shared.db.base import utcnow
from shared.db.models import Job, JobStatus, WebhookDelivery

_PRIORITY_RANK = case({"high": 0, "normal": 1, "low": 2}, value=Job.priority)
_OPEN = (JobStatus.queued.value, JobStatus.running.value)


@dataclass(frozen=True)
class Claim:
    """A job this worker now holds, as attempt number `attempt`."""

    job_id: uuid.UUID
    attempt: int
    started_at: datetime


def add(session: Session, job: Job) -> Job:
    session.add(job)
    session.flush()
    return job


def get(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id, options=[selectinload(Job.model_version)])


def get_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.idempotency_key == key))


def _claimable(now: datetime) -> Any:
    # Queued, or running under a lease that lapsed (its worker died or lost the message).
    return or_(
        Job.status == JobStatus.queued.value,
        and_(Job.status == JobStatus.running.value, Job.lease_expires_at < now),
    )


def claim(session: Session, job_id: uuid.UUID, lease_seconds: float) -> Claim | None:
    """Take the job for a new attempt; None when it is not claimable."""
    now = utcnow()
    attempt = session.scalar(
        update(Job)
        .where(Job.id == job_id, _claimable(now))
        .values(status=JobStatus.running.value, started_at=now, attempts=Job.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Job.attempts)
    )
    return None if attempt is None else Claim(job_id, int(attempt), now)


def lease_remaining(session: Session, job_id: uuid.UUID) -> float | None:
    """Seconds until a running job's lease lapses (None if it is not running)."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.running.value or job.lease_expires_at is None:
        return None
    expires = job.lease_expires_at
    expires = expires if expires.tzinfo else expires.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (expires - utcnow()).total_seconds())


def queued_companions(session: Session, version_id: int, kind: str, exclude: uuid.UUID, limit: int) -> Sequence[Job]:
    """Queued jobs for the same model version and kind, oldest first within priority,
    locked so that concurrent workers take disjoint sets."""
    query = (
        select(Job)
        .where(Job.model_version_id == version_id, Job.kind == kind,
               Job.status == JobStatus.queued.value, Job.id != exclude)
        .order_by(_PRIORITY_RANK, Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def claim_locked(session: Session, job_ids: list[uuid.UUID], lease_seconds: float) -> list[Claim]:
    """Claim jobs already locked by `queued_companions` in this transaction."""
    if not job_ids:
        return []
    now = utcnow()
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == JobStatus.queued.value)
        .values(status=JobStatus.running.value, started_at=now, attempts=Job.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Job.id, Job.attempts)
    ).all()
    return [Claim(row[0], int(row[1]), now) for row in rows]


def finish(
    session: Session,
    claim_: Claim,
    status: JobStatus,
    result: list[Any] | None = None,
    error: str | None = None,
) -> bool:
    """running -> final, only for the attempt that holds the job; False if it moved on
    (cancelled, or taken over after the lease lapsed)."""
    outcome = session.execute(
        update(Job)
        .where(Job.id == claim_.job_id, Job.status == JobStatus.running.value, Job.attempts == claim_.attempt)
        .values(status=status.value, result=result, error=error, finished_at=utcnow(), lease_expires_at=None)
    )
    return outcome.rowcount == 1


def cancel(session: Session, job_id: uuid.UUID) -> bool:
    """queued/running -> cancelled; False when the job had already ended."""
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(_OPEN))
        .values(status=JobStatus.cancelled.value, finished_at=utcnow(), lease_expires_at=None)
    )
    return outcome.rowcount == 1


def mark_enqueued(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=utcnow()))


def stranded(session: Session, requeue_after_seconds: float, limit: int = 500) -> Sequence[Job]:
    """Jobs whose message may be lost: queued and not published for a while, or running
    under a lapsed lease."""
    now = utcnow()
    cutoff = now - timedelta(seconds=requeue_after_seconds)
    query = (
        select(Job)
        .where(or_(
            and_(Job.status == JobStatus.queued.value,
                 or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff)),
            and_(Job.status == JobStatus.running.value, Job.lease_expires_at < now),
        ))
        .order_by(Job.created_at)
        .limit(limit)
    )
    return session.scalars(query).all()


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    kind: str | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def list_page(
    session: Session, filters: JobFilter, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> Sequence[Job]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).options(selectinload(Job.model_version))
    for column, value in ((Job.status, filters.status), (Job.kind, filters.kind), (Job.model_name, filters.model)):
        if value is not None:
            query = query.where(column == value)
    if filters.created_after is not None:
        query = query.where(Job.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Job.created_at < filters.created_before)
    if after is not None:
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(*after))
    return session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)).all()


def add_delivery(session: Session, delivery: WebhookDelivery) -> None:
    session.add(delivery)
    session.flush()


def deliveries(session: Session, job_id: uuid.UUID) -> Sequence[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.attempt)
    return session.scalars(query).all()


def delete(session: Session, job_id: uuid.UUID) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        session.delete(job)
        session.flush()
