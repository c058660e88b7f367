"""Job routes: submit and poll."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from services.api.deps import CeleryDep, SessionDep, SettingsDep
from services.api.jobs import service
from shared.jobs.schemas import JobCreate, JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def submit_job(body: JobCreate, response: Response, session: SessionDep, celery: CeleryDep,
               settings: SettingsDep) -> JobRead:
    """Queue a job; poll the Location it answers with for the result."""
    job = service.create_job(session, body, settings)
    session.commit()
    service.enqueue(session, celery, job)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.from_row(job)


@router.get("/{job_id}", response_model=JobRead)
def read_job(job_id: uuid.UUID, session: SessionDep) -> JobRead:
    """A job with its status, result (one entry per input) and timings."""
    return JobRead.from_row(service.get_job(session, job_id))
