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
