"""Job deadlines and retention: a queued job past its deadline ends `expired` and never runs;
a finished job's inputs and result are purged after its team's retention period, its row
(metadata, timings, error) kept and marked `purged_at`. Both run from beat in bounded batches
(services/worker/maintenance.py); the claim statement itself never takes an expired job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, select, update
from sqlalchemy.orm import Session

from seqserve.shared.config import Settings
from seqserve.shared.db.models import FINAL_JOB_STATUSES, Job, JobStatus

SWEEP_JOBS_TASK = "seqserve.jobs.sweep"  # beat: expire_due, then purge_due

_T: Table = Job.__table__  # type: ignore[assignment]  # declarative: a FromClause to the type checker
_FINAL = tuple(status.value for status in FINAL_JOB_STATUSES)


class DeadlineError(ValueError):
    """A deadline a job may not carry; `field` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def deadline(expires_at: datetime | None, max_queue_seconds: float | None, now: datetime,
             settings: Settings) -> datetime | None:
    """When a job submitted `now` expires if still queued: the earlier of the two asked for,
    each in the future and at most `settings.max_queue_seconds` ahead."""
    limit = settings.max_queue_seconds
    candidates = []
    if max_queue_seconds is not None:
        if not 0 < max_queue_seconds <= limit:
            raise DeadlineError("max_queue_seconds", f"max_queue_seconds must be > 0 and at most {limit:g}")
        candidates.append(now + timedelta(seconds=max_queue_seconds))
    if expires_at is not None:
        if expires_at <= now:
            raise DeadlineError("expires_at", "expires_at is in the past")
        if expires_at > now + timedelta(seconds=limit):
            raise DeadlineError("expires_at", f"expires_at is more than {limit:g} seconds ahead")
        candidates.append(expires_at)
    return min(candidates) if candidates else None


@dataclass(frozen=True)
class ExpiredJob:
    id: uuid.UUID
    kind: str
    model_name: str
    has_webhook: bool


def expire_due(session: Session, now: datetime, limit: int) -> list[ExpiredJob]:
    """queued -> expired for up to `limit` jobs whose deadline passed (rows a claim holds are
    skipped: the claim, which never takes them, lets go at once)."""
    # Two statements in one transaction: as a subquery of the UPDATE, Postgres re-ran the
    # locking SELECT and its LIMIT bounded nothing.
    due = session.scalars(select(_T.c.id).where(_T.c.status == JobStatus.queued.value, _T.c.expires_at <= now)
                          .order_by(_T.c.expires_at).limit(limit).with_for_update(skip_locked=True)).all()
    if not due:
        return []
    rows = session.execute(
        update(_T).where(_T.c.id.in_(due), _T.c.status == JobStatus.queued.value)
        .values(status=JobStatus.expired.value, finished_at=now, lease_expires_at=None,
                error="expired: its deadline passed while it was queued; it never ran")
        .returning(_T.c.id, _T.c.kind, _T.c.model_name, _T.c.webhook_url)
    ).all()
    return [ExpiredJob(row.id, row.kind, row.model_name, row.webhook_url is not None) for row in rows]


def retention_cutoffs(settings: Settings, now: datetime) -> list[tuple[str | None, list[str], datetime]]:
    """(team or None for every other team, teams excluded, cutoff) per retention period."""
    overrides = settings.retention_team_days
    cutoffs: list[tuple[str | None, list[str], datetime]] = [
        (team, [], now - timedelta(days=days)) for team, days in sorted(overrides.items())]
    cutoffs.append((None, sorted(overrides), now - timedelta(days=settings.retention_days)))
    return cutoffs


_PURGE = (update(_T).where(_T.c.id == bindparam("b_id"), _T.c.purged_at.is_(None))
          .values(inputs=bindparam("b_inputs"), result=None, purged_at=bindparam("b_now")))


def purge_due(session: Session, settings: Settings, now: datetime, limit: int) -> int:
    """Purge up to `limit` finished jobs past their team's retention: inputs become nulls (the
    count stays, as `num_inputs`), the result goes; returns how many."""
    purged = 0
    for team, excluded, cutoff in retention_cutoffs(settings, now):
        query = (select(_T.c.id, _T.c.num_inputs.label("size"))
                 .where(_T.c.status.in_(_FINAL), _T.c.purged_at.is_(None), _T.c.finished_at < cutoff)
                 .order_by(_T.c.finished_at).limit(limit - purged))
        query = query.where(_T.c.team == team) if team is not None else query.where(_T.c.team.not_in(excluded))
        rows = session.execute(query).all()
        if rows:
            params = [{"b_id": row.id, "b_inputs": [None] * int(row.size), "b_now": now} for row in rows]
            purged += cast(CursorResult[Any], session.execute(_PURGE, params)).rowcount
        if purged >= limit:
            break
    return purged
