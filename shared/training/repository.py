"""All training-run queries. Functions flush; the caller commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import ModelVersion, RunStatus, TrainingRun


def create(session: Session, task: str, preset: str, model_name: str, overrides: dict[str, Any]) -> TrainingRun:
    run = TrainingRun(model_name=model_name, task=task, preset=preset, status=RunStatus.queued.value,
                      config={"overrides": overrides})
    session.add(run)
    session.flush()
    return run


def delete(session: Session, run_id: uuid.UUID) -> None:
    run = session.get(TrainingRun, run_id)
    if run is not None:
        session.delete(run)
        session.flush()


def get(session: Session, run_id: uuid.UUID) -> TrainingRun | None:
    return session.get(TrainingRun, run_id)


def list_recent(session: Session, limit: int = 50, status: str | None = None) -> Sequence[TrainingRun]:
    query = select(TrainingRun).order_by(TrainingRun.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(TrainingRun.status == status)
    return session.scalars(query).all()


def version_of(session: Session, run_id: uuid.UUID) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.training_run_id == run_id))


def mark_running(session: Session, run: TrainingRun) -> None:
    run.status, run.started_at, run.error = RunStatus.running.value, utcnow(), None
    session.flush()


def get_locked(session: Session, run_id: uuid.UUID) -> TrainingRun | None:
    """The run, row-locked until the commit: a cancel and the trainer's start or end never interleave."""
    return session.get(TrainingRun, run_id, with_for_update=True, populate_existing=True)


def request_cancel(session: Session, run: TrainingRun) -> None:
    """Queued: cancelled at once (the trainer skips it). Running: the trainer stops at its next batch."""
    if run.status == RunStatus.queued.value:
        run.status, run.finished_at = RunStatus.cancelled.value, utcnow()
    elif run.cancel_requested_at is None:
        run.cancel_requested_at = utcnow()
    session.flush()


def record_progress(session: Session, run_id: uuid.UUID, progress: dict[str, Any] | None) -> bool:
    """Write the run's progress (None: leave it); True when a cancel was requested."""
    run = session.get(TrainingRun, run_id, populate_existing=True)
    if run is None:
        return True  # the row is gone: nothing to train for
    if progress is not None:
        run.progress = progress
    session.flush()
    return run.cancel_requested_at is not None


def mark_cancelled(session: Session, run_id: uuid.UUID) -> None:
    run = session.get(TrainingRun, run_id)
    if run is not None:
        run.status, run.finished_at = RunStatus.cancelled.value, utcnow()
        session.flush()


def append_epoch(session: Session, run_id: uuid.UUID, entry: dict[str, Any]) -> None:
    run = session.get(TrainingRun, run_id, with_for_update=True)
    if run is not None:
        run.history = [*run.history, entry]
        session.flush()


def mark_failed(session: Session, run_id: uuid.UUID, error: str) -> None:
    run = session.get(TrainingRun, run_id)
    if run is not None:
        run.status, run.error, run.finished_at = RunStatus.failed.value, error, utcnow()
        session.flush()
