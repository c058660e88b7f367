"""All queries of files and batches, and of the job rows (chunks) a batch becomes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.batch_models import OPEN_BATCH_STATUSES, Batch, BatchStatus, StoredFile
from seqserve.shared.db.models import Job, JobStatus

CANCELLABLE = (BatchStatus.validating.value, BatchStatus.in_progress.value)
_OPEN_JOBS = (JobStatus.queued.value, JobStatus.running.value)


def add_file(session: Session, row: StoredFile) -> None:
    session.merge(row)  # a re-run finalize writes the same output file ids again
    session.flush()


def get_file(session: Session, file_id: uuid.UUID, team: str) -> StoredFile | None:
    row = session.get(StoredFile, file_id)
    return row if row is not None and row.team == team else None


def get_batch(session: Session, batch_id: uuid.UUID, team: str) -> Batch | None:
    row = session.get(Batch, batch_id)
    return row if row is not None and row.team == team else None


def add_batch(session: Session, batch: Batch) -> None:
    session.add(batch)
    session.flush()


def open_batch_ids(session: Session, limit: int = 100) -> list[uuid.UUID]:
    query = (select(Batch.id).where(Batch.status.in_([s.value for s in OPEN_BATCH_STATUSES]))
             .order_by(Batch.created_at).limit(limit))
    return list(session.scalars(query))


def lock_open(session: Session, batch_id: uuid.UUID) -> Batch | None:
    """The batch, row-locked for this transaction, if it is open and no other driver holds it."""
    query = (select(Batch).where(Batch.id == batch_id, Batch.status.in_([s.value for s in OPEN_BATCH_STATUSES]))
             .with_for_update(skip_locked=True))
    return session.scalar(query)


def request_cancel(session: Session, batch_id: uuid.UUID) -> bool:
    """validating/in_progress -> cancelling; False when the batch is past those."""
    outcome = session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.status.in_(CANCELLABLE))
        .values(status=BatchStatus.cancelling.value, cancelling_at=utcnow())
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def cancel_chunks(session: Session, batch_id: uuid.UUID, running_too: bool = False) -> int:
    """The batch's queued job rows (and running ones: their results are then discarded) -> cancelled."""
    statuses = _OPEN_JOBS if running_too else (JobStatus.queued.value,)
    outcome = session.execute(
        update(Job).where(Job.batch_id == batch_id, Job.status.in_(statuses))
        .values(status=JobStatus.cancelled.value, finished_at=utcnow(), lease_expires_at=None)
    )
    return int(outcome.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ChunkCounts:
    """Job rows and their inputs, per job status."""

    jobs: dict[str, int]
    inputs: dict[str, int]

    @property
    def open_jobs(self) -> int:
        return sum(self.jobs.get(status, 0) for status in _OPEN_JOBS)


def chunk_counts(session: Session, batch_id: uuid.UUID) -> ChunkCounts:
    rows = session.execute(
        select(Job.status, func.count(), func.coalesce(func.sum(Job.num_inputs), 0))
        .where(Job.batch_id == batch_id).group_by(Job.status)
    ).all()
    return ChunkCounts({row[0]: int(row[1]) for row in rows}, {row[0]: int(row[2]) for row in rows})


def insert_chunks(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert job rows; a chunk already there (the same batch and first input) is left as it is."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert if dialect == "sqlite" else None
    if builder is None:
        raise RuntimeError(f"no conflict-tolerant insert for {dialect}")
    table = Job.__table__
    statement = builder(table).on_conflict_do_nothing(index_elements=["batch_id", "batch_line"])  # type: ignore[arg-type]
    session.execute(statement, list(rows))


@dataclass(frozen=True)
class Chunk:
    first: int  # index of its first input in the batch
    size: int
    status: str
    result: list[Any] | None
    error: str | None


def chunks_in_order(session: Session, batch_id: uuid.UUID, first: int = 0, per_fetch: int = 32) -> Iterator[Chunk]:
    """The batch's job rows from the one starting at input `first` on, in input order, fetched
    a few at a time (memory flat in the corpus)."""
    query = (select(Job.batch_line, Job.num_inputs, Job.status, Job.result, Job.error)
             .where(Job.batch_id == batch_id, Job.batch_line >= first).order_by(Job.batch_line)
             .execution_options(yield_per=per_fetch))
    for row in session.execute(query):
        yield Chunk(int(row[0]), int(row[1]), row[2], row[3], row[4])


@dataclass(frozen=True)
class BatchFilter:
    team: str
    status: str | None = None
    kind: str | None = None
    model: str | None = None


def list_page(session: Session, filters: BatchFilter, limit: int, after: tuple[datetime, uuid.UUID] | None
              ) -> Sequence[Batch]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(Batch).where(Batch.team == filters.team)
    for column, value in ((Batch.status, filters.status), (Batch.kind, filters.kind),
                          (Batch.model_name, filters.model)):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(tuple_(Batch.created_at, Batch.id) < tuple_(*after))
    return session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)).all()


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Batch.status, func.count()).group_by(Batch.status)).all()
    return {row[0]: int(row[1]) for row in rows}
