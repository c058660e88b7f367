"""Job event streams over server-sent events: `GET /v1/jobs/{id}/events`, and the answer to
`POST /v1/jobs` with `"stream": true` (services/api/jobs/routes.py calls `stream_response`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from seqserve.services.api.auth import JobsRead
from seqserve.services.api.deps import in_unit_of_work
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.services.api.events.service import job_events
from seqserve.services.api.jobs import service as jobs_service
from seqserve.shared.config import get_settings
from seqserve.shared.jobs.schemas import JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=AUTH_ERRORS)  # every route here needs a key

PING_SECONDS = 15  # a comment line this often keeps proxies from closing a quiet stream
EVENTS_DOC = ("Server-sent events: `status` ({job_id, status}), `token` (generate: {step, tokens}, tokens[i] for "
              "input i), `sentence` (translate: {translations: {index: text}}), then `final` (the whole job); "
              "`error` carries the JSON error shape. Each event but the first and last has an `id` to resume from.")
# The OpenAPI entry of a 200 answered as an event stream.
EVENT_STREAM = {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": EVENTS_DOC}
LAST_EVENT_ID_DOC = "Resume after this event (the `id` of the last event received)."


async def read_job(job_id: uuid.UUID, team: str) -> JobRead | None:
    return await run_in_threadpool(in_unit_of_work, lambda session: jobs_service.read(session, job_id, team))


def stream_response(request: Request, job: JobRead, team: str, last_event_id: str | None = None,
                    headers: dict[str, str] | None = None) -> EventSourceResponse:
    """The job's events as a streaming response (the job already read, so a 404 came before)."""
    reader = request.app.state.job_events
    events = job_events(job, lambda: read_job(job.id, team), reader, last_event_id, get_settings())
    # X-Accel-Buffering: nginx-style proxies pass events through as they come.
    return EventSourceResponse(events, ping=PING_SECONDS, headers={"X-Accel-Buffering": "no", **(headers or {})})


@router.get("/{job_id}/events", response_class=EventSourceResponse,
            responses={200: EVENT_STREAM, **responses(404, 422)})
async def job_event_stream(
    job_id: uuid.UUID,
    request: Request,
    principal: JobsRead,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,20}-\d{1,20}$", description=LAST_EVENT_ID_DOC)
                             ] = None,
) -> Any:
    """Follow your team's job as server-sent events until it ends; resumable with Last-Event-ID."""
    job = await read_job(job_id, principal.team)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}", "id")
    return stream_response(request, job, principal.team, last_event_id)
