"""All job queries. State changes are conditional updates, so a redelivered or late message
can never flip a job that has moved on, and only the attempt holding a job writes its result."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    CursorResult,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, selectinload

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job, JobStatus, WebhookDelivery
from seqserve.shared.jobs.sql_functions import QueuedSeen
from seqserve.shared.rollouts.tables import ShadowRun

_OPEN = (JobStatus.queued.value, JobStatus.running.value)


@dataclass(frozen=True)
class Claim:
    """A job this worker now holds, as attempt number `attempt`."""

    job_id: uuid.UUID
    attempt: int
    started_at: datetime


def get(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id, options=[selectinload(Job.model_version)])


def get_row(session: Session, job_id: uuid.UUID, team: str) -> Any:
    """The team's job's columns as a plain row (no ORM identity map, no relationship loads)."""
    return session.execute(select(Job.__table__).where(Job.id == job_id, Job.team == team)).first()


def count_queued(session: Session, priority: str) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value, Job.priority == priority)
    ) or 0)


def get_by_idempotency_key(session: Session, team: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.team == team, Job.idempotency_key == key))


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (its result is a CursorResult; Session.execute is typed wider)."""
    return cast(CursorResult[Any], result).rowcount


def insert_row(session: Session, row: dict[str, Any]) -> None:
    """Insert a job from its complete column values (no ORM object: the API's hottest write)."""
    insert_rows(session, [row])


def insert_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert jobs from their complete column values, in one statement (one atomic write in
    autocommit: the API's group commit)."""
    session.execute(insert(_T), list(rows))


@dataclass(frozen=True)
class BatchGroup:
    """Jobs that may share a forward pass: one model version, one kind, one batch key."""

    version_id: int
    kind: str
    batch_key: str


@dataclass(frozen=True)
class ClaimedJob:
    """A claimed job with what the worker needs to run it."""

    claim: Claim
    params: dict[str, Any]
    inputs: list[str]
    created_at: datetime
    has_webhook: bool
    priority: str
    batch_id: uuid.UUID | None = None  # the corpus batch whose job row (chunk) this is
    # A shadow run waits for this job's result (recorded with the job, in its transaction):
    # only then does the worker look for shadow work when the job finishes.
    shadowed: bool = False
    # The group's queued jobs the claim's snapshot held, its own included (up to its row
    # limit + 1; None on SQLite, which cannot say): equal to what the claim took, the group
    # was drained as of that claim (`drained_by`).
    queued_seen: int | None = None


_T: Table = Job.__table__  # type: ignore[assignment]  # declarative: a FromClause to the type checker
PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}  # claims take higher priorities first, then the oldest
_RANK = case(PRIORITY_ORDER, value=_T.c.priority)
_LOW_RANK = PRIORITY_ORDER["low"]


def _claim_statement() -> Any:
    """One statement, on Postgres and SQLite alike: lock the group's next queued jobs
    (SKIP LOCKED, so concurrent workers take disjoint sets), keep those whose inputs fit the
    budget in priority-then-age order (the first one always when `first_always`: a job larger
    than the limit runs alone; low-priority jobs only when no other is queued), and take them
    as a new attempt. A job that does not fit is not overtaken: it leads the next batch. The
    statement is atomic, so it needs no transaction around it (one round trip).

    SKIP LOCKED means a claim may miss a row another transaction holds: harmless when that is
    another claim (every claimer claims again until its own claim is empty), so anything else
    that locks queued rows (the reconciler marking them) must commit before waking the group."""
    queued = (_T.c.model_version_id == bindparam("g_version"), _T.c.batch_key == bindparam("g_batch_key"),
              _T.c.kind == bindparam("g_kind"), _T.c.status == JobStatus.queued.value,
              # the priorities whose queues the claiming worker consumes
              _T.c.priority.in_(bindparam("priorities", expanding=True)),
              # past its deadline a job never runs (beat's sweep marks it expired)
              or_(_T.c.expires_at.is_(None), _T.c.expires_at > bindparam("c_now")))
    seen = select(func.count()).select_from(select(_T.c.id).where(*queued).limit(bindparam("rows") + 1).subquery())
    candidates = (
        select(_T.c.id, _T.c.created_at, _RANK.label("rank"), _T.c.num_inputs.label("size"))
        .where(*queued)
        .order_by(_RANK, _T.c.created_at, _T.c.id)
        .limit(bindparam("rows"))
        .with_for_update(skip_locked=True)
        .subquery()
    )
    order = (candidates.c.rank, candidates.c.created_at, candidates.c.id)
    ranked = select(
        candidates.c.id,
        candidates.c.rank,
        func.min(candidates.c.rank).over().label("top"),
        func.sum(candidates.c.size).over(order_by=order).label("upto"),
        func.row_number().over(order_by=order).label("n"),
    ).subquery()
    chosen = select(ranked.c.id).where(
        or_(ranked.c.upto <= bindparam("budget"), and_(ranked.c.n == 1, bindparam("first_always", type_=Boolean))),
        # Low-priority jobs (a corpus batch's chunks) join a pass only when no interactive job
        # is queued in the group: an interactive job then runs in a pass of its own size,
        # not behind a corpus chunk's inputs in the same pass (docs/benchmarks/batches.md).
        or_(ranked.c.rank < _LOW_RANK, ranked.c.top == _LOW_RANK))
    return (
        update(_T)
        .where(_T.c.id.in_(chosen))
        .values(status=JobStatus.running.value, started_at=bindparam("c_now"), attempts=_T.c.attempts + 1,
                lease_expires_at=bindparam("lease_until"))
        .returning(_T.c.id, _T.c.attempts, _T.c.params, _T.c.inputs, _T.c.created_at, _T.c.webhook_url,
                   _T.c.priority, _T.c.batch_id, exists().where(ShadowRun.job_id == _T.c.id).label("shadowed"),
                   QueuedSeen(seen.scalar_subquery()).label("queued_seen"))
    )


_CLAIM = _claim_statement()


def claim_batch(session: Session, group: BatchGroup, max_inputs: int, lease_seconds: float, taken: int = 0,
                priorities: Collection[str] = tuple(PRIORITY_ORDER)) -> list[ClaimedJob]:
    """Claim the group's next batch: queued jobs of `priorities` holding at most `max_inputs -
    taken` inputs in all, in priority-then-age order. `taken`: inputs the batch already holds (a
    second look after the batching delay); with none taken the first job is always claimed.
    `priorities`: those the worker serves (an interactive lane leaves a corpus's chunks alone)."""
    budget = max_inputs - taken
    if budget <= 0:
        return []
    now = utcnow()
    rows = session.execute(_CLAIM, {
        "c_now": now, "lease_until": now + timedelta(seconds=lease_seconds), "g_version": group.version_id,
        "g_kind": group.kind, "g_batch_key": group.batch_key, "rows": budget + 1, "budget": budget,
        "first_always": taken == 0, "priorities": list(priorities),
    }).all()
    claimed = [ClaimedJob(Claim(row.id, int(row.attempts), now), row.params, list(row.inputs), row.created_at,
                          row.webhook_url is not None, row.priority, batch_id=row.batch_id,
                          shadowed=bool(row.shadowed), queued_seen=row.queued_seen)
               for row in rows]
    # RETURNING comes in no particular order.
    return sorted(claimed, key=lambda job: (PRIORITY_ORDER[job.priority], job.created_at, job.claim.job_id))


def others_waiting(session: Session, group: BatchGroup, priorities: Sequence[str]) -> bool:
    """Whether a job of one of `priorities` waits in the queue outside `group` (one indexed
    look at the queued rows: ix_jobs_status_created_at)."""
    query = (select(_T.c.id)
             .where(_T.c.status == JobStatus.queued.value, _T.c.priority.in_(list(priorities)),
                    or_(_T.c.expires_at.is_(None), _T.c.expires_at > utcnow()),
                    ~and_(_T.c.model_version_id == group.version_id, _T.c.kind == group.kind,
                          _T.c.batch_key == group.batch_key))
             .limit(1))
    return session.execute(query).first() is not None


def drained_by(claimed: Sequence[ClaimedJob]) -> bool:
    """Whether the claim that took the last of `claimed` (one batch, perhaps of two claims)
    took every queued job of the group its snapshot held. Then the wake-up may end without
    another claim: a job committed later has a wake-up of its own, published after its
    commit; one a concurrent claim held (SKIP LOCKED) was counted here, so is not drained."""
    last = claimed[-1]
    took = sum(job.claim.started_at == last.claim.started_at for job in claimed)  # one `now` per claim
    return last.queued_seen is not None and last.queued_seen <= took


def requeue_lapsed(session: Session, group: BatchGroup) -> int:
    """running -> queued for the group's jobs whose lease lapsed (their worker died), so the
    next claim takes them as a new attempt; the dead attempt can no longer write. Only a
    recovering wake-up does this: the claim itself reads queued rows only, through the batch
    group index (a claim that also looked for lapsed leases read every finished row of the
    group; docs/benchmarks/job-path.md)."""
    return _rowcount(session.execute(
        update(_T)
        .where(_T.c.model_version_id == group.version_id, _T.c.batch_key == group.batch_key,
               _T.c.kind == group.kind, _T.c.status == JobStatus.running.value, _T.c.lease_expires_at < utcnow())
        .values(status=JobStatus.queued.value, lease_expires_at=None)
    ))


# Extend a lease, only for the attempt that holds the job (executed many at once).
_RENEW = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.status == JobStatus.running.value,
           _T.c.attempts == bindparam("b_attempt"))
    .values(lease_expires_at=bindparam("b_until"))
)


def renew_leases(session: Session, claims: Sequence[Claim], lease_seconds: float) -> int:
    """Push the leases of the attempts that still hold their jobs a whole lease ahead, in one
    round trip; returns how many still held theirs. Each row's update stands alone."""
    if not claims:
        return 0
    until = utcnow() + timedelta(seconds=lease_seconds)
    params = [{"b_id": claim.job_id, "b_attempt": claim.attempt, "b_until": until} for claim in claims]
    return _rowcount(session.execute(_RENEW, params))


def next_lease_lapse(session: Session, group: BatchGroup) -> float | None:
    """Seconds until the first live lease in the group lapses (None when nothing runs)."""
    expires = session.scalar(
        select(func.min(_T.c.lease_expires_at))
        .where(_T.c.model_version_id == group.version_id, _T.c.kind == group.kind,
               _T.c.batch_key == group.batch_key, _T.c.status == JobStatus.running.value)
    )
    return None if expires is None else max(0.0, (expires - utcnow()).total_seconds())


# running -> final, only for the attempt that holds the job (executed many at once).
_FINISH = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.status == JobStatus.running.value,
           _T.c.attempts == bindparam("b_attempt"))
    .values(status=bindparam("b_status"), result=bindparam("b_result"), error=bindparam("b_error"),
            finished_at=bindparam("b_finished"), lease_expires_at=None)
)

Outcome = tuple[Claim, JobStatus, list[Any] | None, str | None]


def finish_many(session: Session, outcomes: Sequence[Outcome], finished_at: datetime | None = None) -> set[uuid.UUID]:
    """running -> final for a whole batch in one round trip, only for the attempts that still
    hold their jobs (not cancelled, not taken over after a lapsed lease); returns the ids
    written. Each row's update stands alone, so an autocommit session may run it."""
    if not outcomes:
        return set()
    now = finished_at or utcnow()
    params = [{"b_id": claim_.job_id, "b_attempt": claim_.attempt, "b_status": status.value, "b_result": result,
               "b_error": error, "b_finished": now} for claim_, status, result, error in outcomes]
    written = _rowcount(session.execute(_FINISH, params))
    ids = {claim_.job_id for claim_, *_ in outcomes}
    if written == len(outcomes):
        return ids
    # Some moved on: written are the rows that now hold this attempt's final status.
    expected = {claim_.job_id: (claim_.attempt, status.value) for claim_, status, _, _ in outcomes}
    rows = session.execute(select(_T.c.id, _T.c.attempts, _T.c.status).where(_T.c.id.in_(ids))).all()
    return {row.id for row in rows if expected[row.id] == (row.attempts, row.status)}


def cancel(session: Session, job_id: uuid.UUID) -> bool:
    """queued/running -> cancelled; False when the job had already ended."""
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(_OPEN))
        .values(status=JobStatus.cancelled.value, finished_at=utcnow(), lease_expires_at=None)
    )
    return _rowcount(outcome) == 1


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
    team: str
    status: str | None = None
    kind: str | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    version: int | None = None  # with `model`: that version's jobs
    batch_id: uuid.UUID | None = None  # that corpus batch's chunk jobs
    chunks: bool = False  # without `batch_id`: also every batch's chunk jobs


def list_page(
    session: Session, filters: JobFilter, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> Sequence[Job]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).options(selectinload(Job.model_version)).where(Job.team == filters.team)
    for column, value in ((Job.status, filters.status), (Job.kind, filters.kind), (Job.model_name, filters.model),
                          (Job.version_number, filters.version)):
        if value is not None:
            query = query.where(column == value)
    if filters.batch_id is not None:
        query = query.where(Job.batch_id == filters.batch_id)
    elif not filters.chunks:
        query = query.where(Job.batch_id.is_(None))
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
