"""Read-only job statistics queries for the ops console and `/v1/stats`.

Portable on purpose (Postgres and the embedded SQLite): the SQL only counts and selects
rows; durations and percentiles are computed by the caller in Python.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seqserve.shared.db.models import Job, JobStatus, ModelVersion

# Jobs that ran (a cancelled job's created -> finished time says nothing about serving).
_RAN = (JobStatus.succeeded.value, JobStatus.failed.value)


@dataclass(frozen=True)
class FinishedJob:
    kind: str
    created_at: datetime
    finished_at: datetime

    @property
    def latency_seconds(self) -> float:
        return (self.finished_at - self.created_at).total_seconds()


@dataclass(frozen=True)
class Failure:
    id: uuid.UUID
    kind: str
    model_name: str
    model_version: int | None
    error: str | None
    finished_at: datetime | None


def count_by_status(session: Session) -> dict[str, int]:
    """Every job ever stored, by status."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: int(count) for status, count in rows}


def finished_counts(session: Session, since: datetime) -> dict[tuple[str, str], int]:
    """Jobs that ended at or after `since`, by (kind, final status); exact, not sampled."""
    query = (
        select(Job.kind, Job.status, func.count())
        .where(Job.finished_at.is_not(None), Job.finished_at >= since)
        .group_by(Job.kind, Job.status)
    )
    return {(kind, status): int(count) for kind, status, count in session.execute(query).all()}


def finished_since(session: Session, since: datetime, limit: int) -> Sequence[FinishedJob]:
    """The newest `limit` jobs that ran and ended at or after `since` (latency samples)."""
    query = (
        select(Job.kind, Job.created_at, Job.finished_at)
        .where(Job.finished_at.is_not(None), Job.finished_at >= since, Job.status.in_(_RAN))
        .order_by(Job.finished_at.desc())
        .limit(limit)
    )
    rows = session.execute(query).all()
    return [FinishedJob(kind, created, finished) for kind, created, finished in rows if finished is not None]


def recent_failures(session: Session, limit: int) -> Sequence[Failure]:
    """The last `limit` failed jobs, newest first."""
    query = (
        select(Job.id, Job.kind, Job.model_name, ModelVersion.version, Job.error, Job.finished_at)
        .outerjoin(ModelVersion, ModelVersion.id == Job.model_version_id)
        .where(Job.status == JobStatus.failed.value)
        .order_by(Job.finished_at.desc().nulls_last(), Job.id.desc())
        .limit(limit)
    )
    return [Failure(*row) for row in session.execute(query).all()]
