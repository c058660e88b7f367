"""All job queries. State changes are conditional updates, so a redelivered or late
message can never flip a job that has already moved on."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db.base import utcnow
from shared.db.models import Job, JobStatus


def add(session: Session, job: Job) -> Job:
    session.add(job)
    session.flush()
    return job


def get(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


def get_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.idempotency_key == key))


def claim(session: Session, job_id: uuid.UUID) -> bool:
    """queued -> running; False when the job is not queued (cancelled, done, taken)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued.value)
        .values(status=JobStatus.running.value, started_at=utcnow(), attempts=Job.attempts + 1)
    )
    return result.rowcount == 1


def finish(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    result: list[Any] | None = None,
    error: str | None = None,
) -> bool:
    """running -> a final status; False when the job was no longer running."""
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running.value)
        .values(status=status.value, result=result, error=error, finished_at=utcnow())
    )
    return outcome.rowcount == 1


def delete(session: Session, job_id: uuid.UUID) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        session.delete(job)
        session.flush()
