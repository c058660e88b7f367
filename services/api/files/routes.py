"""File routes: upload a corpus, read its record and its content."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from seqserve.services.api.auth import JobsRead, JobsWrite
from seqserve.services.api.deps import SessionDep, in_unit_of_work
from seqserve.services.api.errors import AUTH_ERRORS, ApiError, responses
from seqserve.services.api.files import service
from seqserve.shared.batches.schemas import FileRead
from seqserve.shared.config import get_settings
from seqserve.shared.db.batch_models import StoredFile
from seqserve.shared.storage import FileStore

router = APIRouter(prefix="/v1/files", tags=["files"], responses=AUTH_ERRORS)

# Multipart framing around the file: a request this much over the limit is refused unread.
_MULTIPART_SLACK = 64 * 1024
_MEDIA_TYPES = {"jsonl": "application/x-ndjson", "conllu": "text/plain; charset=utf-8",
                "text": "text/plain; charset=utf-8"}
# The 200 of a route that streams a stored file, in any of the formats a file can have.
STREAMED_FILE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The file's bytes, streamed", "content": {media: {} for media in sorted(set(_MEDIA_TYPES.values()))}}}
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "The corpus."},
        "format": {"type": "string", "enum": ["jsonl", "conllu", "text"],
                   "description": "Default: from the file name (.jsonl, .conllu, .txt)."},
    }}}}}}


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


@router.post("", status_code=201, response_model=FileRead, openapi_extra=_UPLOAD_BODY,
             responses=responses(413))
async def upload_file(request: Request, principal: JobsWrite) -> FileRead:
    """Upload a corpus (multipart field `file`, optional `format`): streamed to the file store."""
    settings = get_settings()
    declared = _declared_length(request)
    if declared is not None and declared > settings.max_upload_bytes + _MULTIPART_SLACK:
        raise service.too_large(settings)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(422, "not_multipart", "upload the file as multipart/form-data, field `file`", "file")
    # Starlette spools each part to a temporary file past 1 MiB: nothing is held whole in memory.
    async with request.form(max_files=1, max_fields=2) as form:
        upload, fmt = form.get("file"), form.get("format")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "missing_file", "the multipart field `file` must hold the file", "file")
        if fmt is not None and not isinstance(fmt, str):
            raise ApiError(422, "unknown_format", "format must be a plain field", "format")
        row = await run_in_threadpool(in_unit_of_work, partial(
            service.store_upload, source=upload.file, filename=upload.filename or "upload", declared=fmt,
            team=principal.team, settings=settings))
    return FileRead.from_row(row)


@router.get("/{file_id}", response_model=FileRead, responses=responses(404))
def read_file(file_id: uuid.UUID, session: SessionDep, principal: JobsRead) -> FileRead:
    """A file of your team: its size, sha256, line count and format."""
    return FileRead.from_row(service.get_file(session, file_id, principal.team))


def stream_file(row: StoredFile) -> StreamingResponse:
    """The file's bytes, streamed from the file store."""
    store = FileStore.from_settings(get_settings())
    chunks: Iterator[bytes] = store.chunks(row.id)
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", row.filename)  # a header holds latin-1 and no quotes
    headers = {"Content-Disposition": f'attachment; filename="{safe_name}"', "Content-Length": str(row.bytes)}
    return StreamingResponse(chunks, media_type=_MEDIA_TYPES[row.format], headers=headers)


@router.get("/{file_id}/content", response_class=StreamingResponse, responses={**STREAMED_FILE, **responses(404)})
def read_file_content(file_id: uuid.UUID, session: SessionDep, principal: JobsRead) -> StreamingResponse:
    """A file of your team, its content streamed."""
    return stream_file(service.get_file(session, file_id, principal.team))
