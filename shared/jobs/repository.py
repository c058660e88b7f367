"""All job queries. State changes are conditional updates, so a redelivered or late message
can never flip a job that has moved on, and only the attempt holding a job writes its result."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, text, tuple_, update
from sqlalchemy.orm import Session, selectinload

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job, JobStatus, WebhookDelivery

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


def get_row(session: Session, job_id: uuid.UUID) -> Any:
    """The job's columns as a plain row (no ORM identity map, no relationship loads)."""
    return session.execute(select(Job.__table__).where(Job.id == job_id)).first()


def count_queued(session: Session, priority: str) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value, Job.priority == priority)
    ) or 0)


def get_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.idempotency_key == key))


@dataclass(frozen=True)
class ClaimedJob:
    """A claimed job with what the worker needs to run it."""

    claim: Claim
    kind: str
    params: dict[str, Any]
    inputs: list[str]
    created_at: datetime
    has_webhook: bool
    version_id: int
    batch_key: str
    priority: str


# The worker's hot statements, built once and run on a Core connection (no ORM unit of work or
# statement setup per batch). Their functions take a Session or a Connection.
DB = Session | Connection


def _core(db: DB) -> Connection:
    return db.connection() if isinstance(db, Session) else db


_T = Job.__table__
_PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}  # claims take higher priorities first
_CLAIM_SET = {"status": JobStatus.running.value, "started_at": bindparam("now"), "attempts": _T.c.attempts + 1,
              "lease_expires_at": bindparam("lease_until")}
_CLAIM_ONE = (
    update(_T)
    .where(_T.c.id == bindparam("job_id"),
           or_(_T.c.status == JobStatus.queued.value,
               and_(_T.c.status == JobStatus.running.value, _T.c.lease_expires_at < bindparam("lapsed_before"))))
    .values(**_CLAIM_SET)
    .returning(_T.c.attempts, _T.c.kind, _T.c.params, _T.c.inputs, _T.c.created_at, _T.c.webhook_url,
               _T.c.model_version_id, _T.c.batch_key, _T.c.priority)
)
_QUEUED_IN_GROUP = (
    select(_T.c.id, _T.c.kind, _T.c.params, _T.c.inputs, _T.c.created_at, _T.c.webhook_url, _T.c.model_version_id,
           _T.c.batch_key, _T.c.priority)
    .where(_T.c.model_version_id == bindparam("version_id"), _T.c.batch_key == bindparam("batch_key"),
           _T.c.status == JobStatus.queued.value, _T.c.id != bindparam("exclude"))
    .order_by(case(_PRIORITY_ORDER, value=_T.c.priority), _T.c.created_at)
    .limit(bindparam("rows"))
    .with_for_update(skip_locked=True)
)
_CLAIM_QUEUED = (
    update(_T)
    .where(_T.c.id.in_(bindparam("ids", expanding=True)), _T.c.status == JobStatus.queued.value)
    .values(**_CLAIM_SET)
    .returning(_T.c.id, _T.c.attempts)
)

# running -> final, only for the attempt that holds the job (executed many at once).
_FINISH = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.status == JobStatus.running.value,
           _T.c.attempts == bindparam("b_attempt"))
    .values(status=bindparam("b_status"), result=bindparam("b_result"), error=bindparam("b_error"),
            finished_at=bindparam("b_finished"), lease_expires_at=None)
)


def _claim_params(lease_seconds: float) -> tuple[datetime, dict[str, Any]]:
    now = utcnow()
    return now, {"now": now, "lease_until": now + timedelta(seconds=lease_seconds)}


def _claimed(job_id: uuid.UUID, attempts: int, now: datetime, row: Any) -> ClaimedJob:
    """A claimed job from a row holding the job's columns the worker needs."""
    return ClaimedJob(Claim(job_id, int(attempts), now), row.kind, row.params, list(row.inputs), row.created_at,
                      row.webhook_url is not None, row.model_version_id, row.batch_key, row.priority)


def claim_job(db: DB, job_id: uuid.UUID, lease_seconds: float) -> ClaimedJob | None:
    """Take the job for a new attempt, loading it in the same statement; None when it is not
    claimable."""
    now, params = _claim_params(lease_seconds)
    row = _core(db).execute(_CLAIM_ONE, {**params, "job_id": job_id, "lapsed_before": now}).first()
    return None if row is None else _claimed(job_id, row.attempts, now, row)


def claim(session: Session, job_id: uuid.UUID, lease_seconds: float) -> Claim | None:
    """Take the job for a new attempt; None when it is not claimable."""
    claimed = claim_job(session, job_id, lease_seconds)
    return None if claimed is None else claimed.claim


_LEASE = select(_T.c.lease_expires_at).where(_T.c.id == bindparam("job_id"), _T.c.status == JobStatus.running.value)


def lease_remaining(db: DB, job_id: uuid.UUID) -> float | None:
    """Seconds until a running job's lease lapses (None if it is not running)."""
    expires = _core(db).execute(_LEASE, {"job_id": job_id}).scalar()
    if expires is None:
        return None
    expires = expires if expires.tzinfo else expires.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (expires - utcnow()).total_seconds())


def claim_group(
    db: DB, version_id: int, batch_key: str, exclude: uuid.UUID, max_inputs: int, lease_seconds: float,
    first_always: bool = False,
) -> tuple[list[ClaimedJob], str | None]:
    """Claim queued jobs of one batch group (oldest first within priority) holding at most
    `max_inputs` inputs in all; with `first_always` the first job is taken even if it alone
    holds more (a job larger than the batch limit runs by itself). Rows are locked SKIP
    LOCKED, so concurrent workers take disjoint sets. Returns (claimed, left_over): the
    priority of the first queued job of the group that did not fit, or None."""
    connection = _core(db)
    rows = connection.execute(_QUEUED_IN_GROUP, {"version_id": version_id, "batch_key": batch_key, "exclude": exclude,
                                                 "rows": max(max_inputs, 0) + 1}).all()
    chosen, budget, left_over = [], max_inputs, None
    for row in rows:
        if len(row.inputs) <= budget or (first_always and not chosen):
            chosen.append(row)
            budget -= len(row.inputs)
        else:  # first in, first out: a job that does not fit is not overtaken; it leads the next batch
            left_over = row.priority
            break
    if not chosen:
        return [], left_over
    now, params = _claim_params(lease_seconds)
    attempts = dict(connection.execute(_CLAIM_QUEUED, {**params, "ids": [row.id for row in chosen]}).all())
    claimed = [_claimed(row.id, attempts[row.id], now, row) for row in chosen if row.id in attempts]
    return claimed, left_over


@dataclass
class GroupClaim:
    """What `claim_batch` took: the message's own job (when it was claimable),
    queued companions, the priority of the first queued job that did not fit, and the
    seconds left on another attempt's live lease of the message's job."""

    lead: ClaimedJob | None
    members: list[ClaimedJob]
    left_over: str | None
    lease_left: float | None


_PRIORITY_RANK = "CASE priority " + " ".join(f"WHEN '{p}' THEN {r}" for p, r in _PRIORITY_ORDER.items()) + " END"
_CLAIMED_COLUMNS = "id, attempts, kind, params, inputs, created_at, webhook_url, model_version_id, batch_key, priority"
_NO_JOB = ("NULL::uuid, NULL::int, NULL::varchar, NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, "
           "NULL::int, NULL::varchar")
# Postgres: the message's job and its queued companions in one statement (one round trip, no
# transaction around it). The same rules as `claim_job` then `claim_group`: the job is taken if
# queued or its lease lapsed; companions of its group (or of the given group, when the job is
# gone) oldest first within priority, SKIP LOCKED, while their inputs fit the kind's limit;
# with no job taken the first companion is taken even if it alone holds more.
_CLAIM_BATCH_PG = text(f"""
WITH lead AS (
    UPDATE jobs SET status = 'running', started_at = :now, attempts = attempts + 1, lease_expires_at = :lease_until
    WHERE id = :job_id AND :claim_lead
      AND (status = 'queued' OR (status = 'running' AND lease_expires_at < :now))
    RETURNING {_CLAIMED_COLUMNS}
), budget AS (
    SELECT coalesce((CAST(:limits AS jsonb) ->> coalesce((SELECT kind FROM lead), :kind))::int, :default_limit)
           - coalesce((SELECT jsonb_array_length(inputs) FROM lead), 0) - :taken AS inputs
), candidate AS (
    SELECT id, priority, created_at, jsonb_array_length(inputs) AS size, {_PRIORITY_RANK} AS rank FROM jobs
    WHERE model_version_id = coalesce((SELECT model_version_id FROM lead), :version_id)
      AND batch_key = coalesce((SELECT batch_key FROM lead), :batch_key)
      AND status = 'queued' AND id <> :job_id
    ORDER BY rank, created_at
    LIMIT (SELECT greatest(inputs, 0) + 1 FROM budget)
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT id, priority, sum(size) OVER w AS upto, row_number() OVER w AS n FROM candidate
    WINDOW w AS (ORDER BY rank, created_at, id)
), chosen AS (
    SELECT id FROM ranked
    WHERE upto <= (SELECT inputs FROM budget) OR (n = 1 AND :first_always AND NOT EXISTS (SELECT 1 FROM lead))
), claimed AS (
    UPDATE jobs SET status = 'running', started_at = :now, attempts = jobs.attempts + 1, lease_expires_at = :lease_until
    FROM chosen WHERE jobs.id = chosen.id
    RETURNING jobs.id, jobs.attempts, jobs.kind, jobs.params, jobs.inputs, jobs.created_at, jobs.webhook_url,
              jobs.model_version_id, jobs.batch_key, jobs.priority
)
SELECT 0 AS part, {_CLAIMED_COLUMNS}, NULL::timestamptz AS lease FROM lead
UNION ALL SELECT 1, {_CLAIMED_COLUMNS}, NULL FROM claimed
UNION ALL (SELECT 2, {_NO_JOB}, priority, NULL FROM ranked WHERE id NOT IN (SELECT id FROM chosen) ORDER BY n LIMIT 1)
UNION ALL SELECT 3, {_NO_JOB}, NULL, lease_expires_at FROM jobs
    WHERE id = :job_id AND :claim_lead AND status = 'running' AND NOT EXISTS (SELECT 1 FROM lead)
""")
def claim_batch(
    connection: Connection, job_id: uuid.UUID, group: tuple[int, str, str] | None, limits: dict[str, int],
    lease_seconds: float, *, single_statement: bool, claim_lead: bool = True, taken: int = 0,
) -> GroupClaim:
    """The message's job (with `claim_lead`) and queued jobs of its group: `claim_job` then
    `claim_group`, in one statement when `single_statement` (Postgres only; no transaction
    needed around it), else in several (the caller's transaction). `group`: (version id,
    kind, batch key) to gather when the job itself is not taken; `limits`: inputs per forward
    pass by kind; `taken`: inputs the batch already holds (a second look)."""
    if single_statement:
        return _claim_batch_pg(connection, job_id, group, limits, lease_seconds, claim_lead, taken)
    lead = claim_job(connection, job_id, lease_seconds) if claim_lead else None
    lease_left = lease_remaining(connection, job_id) if claim_lead and lead is None else None
    if lead is not None:
        group, taken = (lead.version_id, lead.kind, lead.batch_key), taken + len(lead.inputs)
    if group is None:
        return GroupClaim(lead, [], None, lease_left)
    version_id, kind, batch_key = group
    members, left_over = claim_group(connection, version_id, batch_key, job_id,
                                     limits[kind] - taken, lease_seconds,
                                     first_always=not taken)
    return GroupClaim(lead, members, left_over, lease_left)


def _claim_batch_pg(
    connection: Connection, job_id: uuid.UUID, group: tuple[int, str, str] | None, limits: dict[str, int],
    lease_seconds: float, claim_lead: bool, taken: int,
) -> GroupClaim:
    now, params = _claim_params(lease_seconds)
    version_id, kind, batch_key = group if group is not None else (None, None, None)
    rows = connection.execute(_CLAIM_BATCH_PG, {
        **params, "job_id": job_id, "claim_lead": claim_lead, "version_id": version_id, "batch_key": batch_key,
        "limits": json.dumps(limits), "kind": kind, "default_limit": min(limits.values()), "taken": taken,
        "first_always": not taken,
    }).all()
    found = GroupClaim(None, [], None, None)
    for row in rows:
        if row.part == 0:
            found.lead = _claimed(row.id, row.attempts, now, row)
        elif row.part == 1:
            found.members.append(_claimed(row.id, row.attempts, now, row))
        elif row.part == 2:
            found.left_over = row.priority
        else:
            found.lease_left = max(0.0, (row.lease - now).total_seconds())
    found.members.sort(key=lambda m: (_PRIORITY_ORDER[m.priority], m.created_at))
    return found


def finish(
    session: Session,
    claim_: Claim,
    status: JobStatus,
    result: list[Any] | None = None,
    error: str | None = None,
) -> bool:
    """running -> final, only for the attempt that holds the job; False if it moved on
    (cancelled, or taken over after the lease lapsed)."""
    return claim_.job_id in finish_many(session, [(claim_, status, result, error)])


Outcome = tuple[Claim, JobStatus, list[Any] | None, str | None]


def finish_many(db: DB, outcomes: Sequence[Outcome], finished_at: datetime | None = None) -> set[uuid.UUID]:
    """`finish` for a whole batch in one round trip; returns the ids actually written. Each
    row's update stands alone, so an autocommit connection may run it."""
    if not outcomes:
        return set()
    now = finished_at or utcnow()
    params = [{"b_id": claim_.job_id, "b_attempt": claim_.attempt, "b_status": status.value, "b_result": result,
               "b_error": error, "b_finished": now} for claim_, status, result, error in outcomes]
    connection = _core(db)
    written = connection.execute(_FINISH, params).rowcount
    ids = {claim_.job_id for claim_, *_ in outcomes}
    if written == len(outcomes):
        return ids
    # Some moved on: written are the rows that now hold this attempt's final status.
    expected = {claim_.job_id: (claim_.attempt, status.value) for claim_, status, _, _ in outcomes}
    rows = connection.execute(select(_T.c.id, _T.c.attempts, _T.c.status).where(_T.c.id.in_(ids))).all()
    return {row.id for row in rows if expected[row.id] == (row.attempts, row.status)}


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
