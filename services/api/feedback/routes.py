"""Feedback routes: corrections of a finished job's answers, for scheduled retraining."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from seqserve.services.api.auth import JobsRead, JobsWrite
from seqserve.services.api.deps import SessionDep
from seqserve.services.api.errors import AUTH_ERRORS, responses
from seqserve.services.api.feedback import service
from seqserve.shared.feedback.schemas import FeedbackCreate, FeedbackRead

router = APIRouter(prefix="/v1/jobs", tags=["feedback"], responses=AUTH_ERRORS)  # every route here needs a key


@router.post("/{job_id}/feedback", status_code=201, response_model=list[FeedbackRead],
             responses=responses(404, 409, 422))
def post_feedback(job_id: uuid.UUID, body: FeedbackCreate, session: SessionDep,
                  principal: JobsWrite) -> list[FeedbackRead]:
    """Correct your team's succeeded job, per input; the model's next scheduled run trains on it."""
    return [FeedbackRead.from_row(row) for row in service.post(session, job_id, principal.team, body)]


@router.get("/{job_id}/feedback", response_model=list[FeedbackRead], responses=responses(404))
def read_feedback(job_id: uuid.UUID, session: SessionDep, principal: JobsRead) -> list[FeedbackRead]:
    """The corrections stored for your team's job, by input index."""
    return [FeedbackRead.from_row(row) for row in service.read(session, job_id, principal.team)]
