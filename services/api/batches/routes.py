"""Batch routes: create a corpus job over an uploaded file, follow it, cancel it, download its output."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from seqserve.services.api.auth import JobsRead, JobsWrite
from seqserve.services.api.batches import service
from seqserve.services.api.cursors import decode_cursor, encode_cursor
from seqserve.services.api.deps import SessionDep, SettingsDep, in_unit_of_work
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.services.api.files.routes import STREAMED_FILE, stream_file
from seqserve.services.api.files.service import get_file
from seqserve.services.api.jobs.prefer import wait_seconds
from seqserve.services.api.limits import LIMIT_ERRORS, admit
from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.batches.schemas import BatchCreate, BatchPage, BatchRead
from seqserve.shared.db.batch_models import Batch, BatchStatus
from seqserve.shared.jobs.kinds import JOB_KINDS
from seqserve.shared.validation import Text

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=AUTH_ERRORS)

PREFER_DOC = "`wait=N` (plain decimal seconds): hold the request up to N seconds (at most 60) for the batch to end."


@router.post("", status_code=202, response_model=BatchRead, responses={**LIMIT_ERRORS, **responses(404)})
def create_batch(body: BatchCreate, request: Request, response: Response, session: SessionDep,
                 settings: SettingsDep, principal: JobsWrite) -> BatchRead:
    """Run every input of an uploaded file; poll the batch, then download its output file.

    A batch counts as one submission against the key's rate limit and its priority against the
    key's max priority; its inputs are not charged to the per-minute input quota (they run at
    the batch's priority, after interactive work)."""
    # The route is sync (its database work runs in the threadpool); the limiter is async.
    response.headers.update(anyio.from_thread.run(admit, request, principal, 0, body.priority))
    batch = service.create(session, request.app.state.celery, body, settings, principal.team)
    return BatchRead.from_row(batch)


@router.get("", response_model=BatchPage)
def list_batches(
    session: SessionDep,
    principal: JobsRead,
    status: Annotated[BatchStatus | None, Query()] = None,
    kind: Annotated[Text | None, Query(max_length=64)] = None,
    model: Annotated[Text | None, Query(max_length=128, description="Model name.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Text | None, Query(max_length=200)] = None,
) -> BatchPage:
    """Your team's batches, newest first, filtered; follow `next_cursor` for the next page."""
    if kind is not None and kind not in JOB_KINDS:
        raise ApiError(422, "unknown_kind", f"unknown job kind '{kind}'", "kind")
    filters = batches_repo.BatchFilter(principal.team, status.value if status else None, kind, model)
    rows = batches_repo.list_page(session, filters, limit + 1, decode_cursor(cursor) if cursor else None)
    page = list(rows[:limit])
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return BatchPage(items=[BatchRead.from_row(batch) for batch in page], next_cursor=next_cursor)


def _read_now(batch_id: uuid.UUID, team: str) -> BatchRead:
    return in_unit_of_work(lambda session: BatchRead.from_row(service.get_batch(session, batch_id, team)))


@router.get("/{batch_id}", response_model=BatchRead, responses=responses(404))
async def read_batch(
    batch_id: uuid.UUID,
    request: Request,
    response: Response,
    settings: SettingsDep,
    principal: JobsRead,
    prefer: Annotated[str | None, Header(description=PREFER_DOC)] = None,
) -> BatchRead:
    """A batch of your team: status, request_counts, timings and its files. With `Prefer:
    wait=N` the request is held until the batch ends or N seconds pass (the driver's event
    wakes it the moment the batch ends), so a client that waits for a batch polls no faster
    than it wants progress and still sees the end at once."""
    wait = wait_seconds(prefer, settings.max_wait_seconds)
    waiter, key = request.app.state.waiter, str(batch_id)
    event = waiter.register(key) if wait else None  # before the first read: no end goes unseen
    try:
        batch = await run_in_threadpool(_read_now, batch_id, principal.team)
        if event is None or service.ended(batch):
            return batch
        # No database connection is held meanwhile: each look is its own short read.
        read = partial(run_in_threadpool, _read_now, batch_id, principal.team)
        held = await waiter.wait(key, wait, read, service.ended, event)
        response.headers["Preference-Applied"] = f"wait={wait:g}"
        return held if held is not None and service.ended(held) else await read()  # as of the answer
    finally:
        if event is not None:
            waiter.discard(key, event)


@router.post("/{batch_id}/cancel", response_model=BatchRead, responses=responses(404, 409))
def cancel_batch(batch_id: uuid.UUID, request: Request, session: SessionDep, principal: JobsWrite) -> BatchRead:
    """Cancel your team's batch: queued inputs never run, running chunks finish, then it ends `cancelled`."""
    return BatchRead.from_row(service.cancel(session, request.app.state.celery, batch_id, principal.team))


def _ended(session: SessionDep, batch_id: uuid.UUID, team: str) -> Batch:
    batch = service.get_batch(session, batch_id, team)
    if not service.ended(batch):
        raise ApiError(409, "batch_not_ended", f"batch {batch_id} is {batch.status}; its files come at its end", "id")
    return batch


@router.get("/{batch_id}/output", response_class=StreamingResponse, responses={**STREAMED_FILE, **responses(404, 409)})
def read_batch_output(
    batch_id: uuid.UUID,
    session: SessionDep,
    principal: JobsRead,
    format: Annotated[Literal["jsonl", "conllu"], Query(description="conllu: tag batches only.")] = "jsonl",
) -> StreamingResponse:
    """The ended batch's output: one line per successful input, in input order (or CoNLL-U for tag)."""
    batch = _ended(session, batch_id, principal.team)
    if format == "conllu" and batch.kind != "tag":
        raise ApiError(422, "format_not_supported", "CoNLL-U output is for tag batches", "format")
    file_id = batch.conllu_file_id if format == "conllu" else batch.output_file_id
    if file_id is None:
        raise ApiError(409, "batch_has_no_output", f"batch {batch_id} {batch.status} before producing output", "id")
    return stream_file(get_file(session, file_id, principal.team))


@router.get("/{batch_id}/errors", response_class=StreamingResponse, responses={**STREAMED_FILE, **responses(404, 409)})
def read_batch_errors(batch_id: uuid.UUID, session: SessionDep, principal: JobsRead) -> StreamingResponse:
    """The ended batch's error file: malformed, failed, expired and cancelled inputs, in input order."""
    batch = _ended(session, batch_id, principal.team)
    if batch.error_file_id is None:
        raise ApiError(409, "batch_has_no_output", f"batch {batch_id} {batch.status} before producing files; see "
                       "its `errors`", "id")
    return stream_file(get_file(session, batch.error_file_id, principal.team))
