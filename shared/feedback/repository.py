"""All feedback queries. Functions flush; the caller commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from seqserve.shared.feedback.models import JobFeedback


def replace(session: Session, job_id: uuid.UUID, rows: list[JobFeedback]) -> None:
    """Store `rows`, each replacing an earlier correction of the same input (the caller holds
    the job's row lock, so two posts on one job do not race)."""
    indices = [row.input_index for row in rows]
    session.execute(delete(JobFeedback).where(JobFeedback.job_id == job_id, JobFeedback.input_index.in_(indices)))
    session.add_all(rows)
    session.flush()


def for_job(session: Session, job_id: uuid.UUID) -> Sequence[JobFeedback]:
    query = select(JobFeedback).where(JobFeedback.job_id == job_id).order_by(JobFeedback.input_index)
    return session.scalars(query).all()


def for_model(session: Session, model_name: str, kind: str, limit: int) -> Sequence[JobFeedback]:
    """The model's newest `limit` corrections of `kind`, oldest first (the order is the data's)."""
    newest = (select(JobFeedback).where(JobFeedback.model_name == model_name, JobFeedback.kind == kind)
              .order_by(JobFeedback.id.desc()).limit(limit))
    return list(reversed(session.scalars(newest).all()))
