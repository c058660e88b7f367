"""Job routes: submit (optionally waiting), poll, list, cancel."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from seqserve.services.api.auth import JobsRead, JobsWrite
from seqserve.services.api.cursors import decode_cursor, encode_cursor
from seqserve.services.api.deps import SessionDep, SettingsDep, in_unit_of_work
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.services.api.events.routes import EVENT_STREAM, stream_response
from seqserve.services.api.jobs import service
from seqserve.services.api.jobs.model_filter import model_filter
from seqserve.services.api.jobs.prefer import wait_seconds
from seqserve.services.api.limits import LIMIT_ERRORS, LIMIT_HEADERS, admit
from seqserve.shared.config import get_settings
from seqserve.shared.db.models import FINAL_JOB_STATUSES, JobStatus
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.kinds import JOB_KINDS
from seqserve.shared.jobs.schemas import JobCreate, JobPage, JobRead
from seqserve.shared.validation import IsoDatetime, Text

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=AUTH_ERRORS)  # every route here needs a key

PREFER_DOC = "`wait=N` (plain decimal seconds): hold the request up to N seconds (at most 60) for the job to end."
DATETIME_DOC = "ISO 8601 with a timezone, e.g. 2026-01-31T12:00:00Z."
IDEMPOTENCY_DOC = "Same key and body return the job the first request created; another body answers 409."
ROUTING_DOC = "Jobs with one routing key (else one Idempotency-Key) get one version of a canary split."


def _done(job: JobRead | None) -> bool:
    return job is None or JobStatus(job.status) in FINAL_JOB_STATUSES


def _answer(job: JobRead, headers: dict[str, str]) -> Response:
    # The body is serialised once, here (returning the model would validate it again).
    status = 200 if JobStatus(job.status) in FINAL_JOB_STATUSES else 202
    return Response(job.model_dump_json(), status, headers, media_type="application/json")


def _read_now(job_id: uuid.UUID, team: str) -> JobRead | None:
    return in_unit_of_work(lambda session: service.read(session, job_id, team))


async def _read(job_id: uuid.UUID, team: str) -> JobRead:
    job = await run_in_threadpool(_read_now, job_id, team)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}", "id")
    return job


async def _await_end(request: Request, job: JobRead, team: str, wait: float, event: asyncio.Event | None
                     ) -> JobRead:
    """Hold the request until the job ends or `wait` seconds pass. No database connection is
    held meanwhile: each look is its own short read."""
    waiter = request.app.state.waiter
    ended = await waiter.wait(str(job.id), wait, lambda: run_in_threadpool(_read_now, job.id, team), _done, event,
                              job.with_final_state)
    return ended or job


@router.post("", status_code=202, response_model=JobRead,
             responses={**LIMIT_ERRORS, **responses(404, 409),
                        200: {"model": JobRead, "description": "Finished within Prefer: wait; with `stream`: the events",
                              "content": EVENT_STREAM["content"], "headers": LIMIT_HEADERS}})
async def submit_job(
    body: JobCreate,
    request: Request,
    principal: JobsWrite,
    prefer: Annotated[str | None, Header(description=PREFER_DOC)] = None,
    idempotency_key: Annotated[Text | None, Header(min_length=1, max_length=255, description=IDEMPOTENCY_DOC)] = None,
    routing_key: Annotated[Text | None, Header(min_length=1, max_length=255, description=ROUTING_DOC)] = None,
) -> Response:
    """Queue a job; poll the Location it answers with, or hold the request with Prefer: wait."""
    # The hottest route: no dependency injection beyond what the signature must document.
    settings, state = get_settings(), request.app.state
    wait = wait_seconds(prefer, settings.max_wait_seconds)
    limit_headers = await admit(request, principal, len(body.inputs), body.priority)  # before anything is stored
    job_id = uuid.uuid4()
    waiter = request.app.state.waiter
    # Listening starts before the job is published, so its finished event can not slip by.
    event = waiter.register(str(job_id)) if wait else None
    try:
        if settings.submit_group_commit and idempotency_key is None:
            # One INSERT and one wake-up for every submission arriving meanwhile (group_commit.py).
            job, replayed = await state.submit_groups.submit(partial(
                service.prepare, caches=state.caches, body=body, settings=settings, job_id=job_id,
                team=principal.team, routing_key=routing_key)), False
        else:
            # Autocommit: the INSERT is the only write (docs/benchmarks/job-path.md).
            job, replayed = await run_in_threadpool(in_unit_of_work, partial(
                service.submit, queue=state.job_queue, caches=state.caches, body=body, settings=settings,
                key=idempotency_key, job_id=job_id, team=principal.team, routing_key=routing_key), True)
        headers = {"Location": f"/v1/jobs/{job.id}", **limit_headers}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        if body.stream:
            return stream_response(request, job, principal.team, headers=headers)
        if wait:
            job = await _await_end(request, job, principal.team, wait, None if replayed else event)
            headers["Preference-Applied"] = f"wait={wait:g}"
    finally:
        if event is not None:
            waiter.discard(str(job_id), event)
    return _answer(job, headers)


MODEL_FILTER_DOC = ("`name` (every version), `name:version` or `name@alias` (the version the alias points at now), "
                    "as in submission.")


@router.get("", response_model=JobPage, responses=responses(404))
def list_jobs(
    session: SessionDep,
    principal: JobsRead,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[Text | None, Query(max_length=64)] = None,
    model: Annotated[Text | None, Query(max_length=256, description=MODEL_FILTER_DOC)] = None,
    created_after: Annotated[IsoDatetime | None, Query(description=DATETIME_DOC)] = None,
    created_before: Annotated[IsoDatetime | None, Query(description=DATETIME_DOC)] = None,
    batch_id: Annotated[uuid.UUID | None, Query(description="Only this corpus batch's chunk jobs.")] = None,
    include_chunks: Annotated[bool, Query(description="Also the chunk jobs of every corpus batch (left out "
                                                      "by default: a batch lists them under its own id).")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Text | None, Query(max_length=200)] = None,
) -> JobPage:
    """Your team's jobs, newest first, filtered; follow `next_cursor` for the next page. The
    chunk jobs corpus batches run through are left out unless asked for."""
    if kind is not None and kind not in JOB_KINDS:
        raise ApiError(422, "unknown_kind", f"unknown job kind '{kind}'", "kind")
    name, version = model_filter(session, model, kind) if model is not None else (None, None)
    filters = jobs_repo.JobFilter(principal.team, status.value if status else None, kind, name, created_after,
                                 created_before, version, batch_id, include_chunks)
    after = decode_cursor(cursor) if cursor else None
    rows = jobs_repo.list_page(session, filters, limit + 1, after)
    page = list(rows[:limit])
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return JobPage(items=[JobRead.from_row(job) for job in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobRead, responses={202: {"model": JobRead, "description": "Not ended yet"},
                                                             **responses(404)})
async def read_job(
    job_id: uuid.UUID,
    request: Request,
    settings: SettingsDep,
    principal: JobsRead,
    prefer: Annotated[str | None, Header(description=PREFER_DOC)] = None,
) -> Response:
    """A job of your team with its status, result (one entry per input) and timings."""
    wait = wait_seconds(prefer, settings.max_wait_seconds)
    job = await _read(job_id, principal.team)
    headers: dict[str, str] = {}
    if wait and not _done(job):
        job = await _await_end(request, job, principal.team, wait, None)
        headers["Preference-Applied"] = f"wait={wait:g}"
    return _answer(job, headers)


@router.post("/{job_id}/cancel", response_model=JobRead, responses=responses(404, 409))
def cancel_job(job_id: uuid.UUID, request: Request, session: SessionDep, principal: JobsWrite) -> JobRead:
    """Cancel your team's job: a queued job never runs; a running job's result is discarded."""
    return JobRead.from_row(service.cancel_job(session, request.app.state.job_queue, job_id, principal.team))
