"""Feedback on a finished job: each correction checked against the job's kind and result."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.feedback import repository as feedback_repo
from seqserve.shared.feedback.models import JobFeedback
from seqserve.shared.feedback.schemas import CORRECTION_FIELDS, FeedbackCreate, FeedbackItem
from seqserve.shared.jobs import repository as jobs_repo


def _job(session: Session, job_id: uuid.UUID, team: str, lock: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=lock) if lock else jobs_repo.get(session, job_id)
    if job is None or job.team != team:  # another team's job is as good as absent
        raise ApiError(404, "job_not_found", f"no job with id {job_id}", "id")
    return job


def _labels(job: Job, index: int) -> list[str]:
    """The model's label set: recorded with the version, else the job's own answer's keys."""
    reference = job.model_version.drift_reference or {}
    labels = reference.get("labels") or list((job.result or [{}])[index].get("probabilities", {}))
    return [str(label) for label in labels]


def _correction(job: Job, item: FeedbackItem, at: str) -> dict[str, Any]:
    field = CORRECTION_FIELDS[job.kind]
    given = {name for name in CORRECTION_FIELDS.values() if getattr(item, name) is not None}
    if given != {field}:
        raise ApiError(422, "invalid_feedback", f"a {job.kind} job's feedback sets '{field}' (only)", f"{at}.{field}")
    if item.index >= len(job.inputs):
        raise ApiError(422, "invalid_feedback", f"the job has {len(job.inputs)} inputs", f"{at}.index")
    result = (job.result or [])[item.index]
    if field == "label":
        labels = _labels(job, item.index)
        if item.label not in labels:
            raise ApiError(422, "invalid_feedback", f"label must be one of {labels}", f"{at}.label")
        return {"label": item.label}
    if field == "tags":
        tokens = result.get("tokens", [])
        if len(item.tags or []) != len(tokens):
            message = f"{len(item.tags or [])} tags for {len(tokens)} tokens {tokens}"
            raise ApiError(422, "invalid_feedback", message, f"{at}.tags")
        known = set((job.model_version.drift_reference or {}).get("labels") or [])
        unknown = sorted(set(item.tags or []) - known) if known else []
        if unknown:
            raise ApiError(422, "invalid_feedback", f"unknown tags {unknown}", f"{at}.tags")
        return {"tags": list(item.tags or []), "tokens": tokens}
    return {"translation": item.translation}


def post(session: Session, job_id: uuid.UUID, team: str, body: FeedbackCreate) -> list[JobFeedback]:
    """Store the corrections of a succeeded job's inputs (409 while it has no answer, or once
    retention purged its inputs; 422 naming the item's field when a correction does not fit)."""
    job = _job(session, job_id, team, lock=True)
    if job.kind not in CORRECTION_FIELDS:
        kinds = ", ".join(sorted(CORRECTION_FIELDS))
        raise ApiError(422, "feedback_not_supported", f"{job.kind} jobs take no feedback; {kinds} do", "id")
    if job.status != JobStatus.succeeded.value:
        raise ApiError(409, "job_not_succeeded", f"job {job_id} is {job.status}; feedback needs an answer", "id")
    if job.purged_at is not None:
        raise ApiError(409, "job_purged", f"job {job_id}'s inputs were purged by retention", "id")
    indices = [item.index for item in body.items]
    if len(set(indices)) != len(indices):
        raise ApiError(422, "invalid_feedback", "each input index at most once per request", "items")
    corrections = [_correction(job, item, f"items[{number}]") for number, item in enumerate(body.items)]
    rows = [JobFeedback(job_id=job.id, team=team, model_name=job.model_name, kind=job.kind, input_index=item.index,
                        input_text=job.inputs[item.index], correction=correction)
            for item, correction in zip(body.items, corrections, strict=True)]
    feedback_repo.replace(session, job.id, rows)
    return list(feedback_repo.for_job(session, job.id))


def read(session: Session, job_id: uuid.UUID, team: str) -> list[JobFeedback]:
    return list(feedback_repo.for_job(session, _job(session, job_id, team).id))
