"""Uploaded files: streamed into the file store, hashed and line-counted on the way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import PurePath
from typing import BinaryIO

from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError
from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.batches.formats import FORMAT_OF_SUFFIX
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.batch_models import FileFormat, StoredFile
from seqserve.shared.storage import CHUNK_BYTES, FileStore, TooLarge


def too_large(settings: Settings) -> ApiError:
    return ApiError(413, "file_too_large", f"files hold at most {settings.max_upload_bytes} bytes", "file")


def file_format(filename: str, declared: str | None) -> str:
    """The declared format, else the one the file name's extension names."""
    if declared is not None:
        if declared not in FileFormat.__members__:
            known = ", ".join(FileFormat.__members__)
            raise ApiError(422, "unknown_format", f"format '{declared[:32]}' is not one of {known}", "format")
        return declared
    found = FORMAT_OF_SUFFIX.get(PurePath(filename).suffix.lower())
    if found is None:
        message = "name the format (jsonl, conllu or text) or upload a .jsonl, .conllu or .txt file"
        raise ApiError(422, "unknown_format", message, "format")
    return found


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_BYTES):
        yield chunk


def store_upload(session: Session, source: BinaryIO, filename: str, declared: str | None, team: str,
                 settings: Settings) -> StoredFile:
    """Copy the upload into the file store in chunks and record it (413 past the size limit)."""
    name = PurePath(filename.replace("\\", "/")).name[:255] or "upload"
    fmt = file_format(name, declared)
    store, file_id = FileStore.from_settings(settings), uuid.uuid4()
    try:
        written = store.write(file_id, _chunks(source), settings.max_upload_bytes)
    except TooLarge:
        raise too_large(settings) from None
    row = StoredFile(id=file_id, team=team, filename=name, format=fmt, purpose="input", bytes=written.bytes,
                     sha256=written.sha256, lines=written.lines, created_at=utcnow())
    batches_repo.add_file(session, row)
    return row


def get_file(session: Session, file_id: uuid.UUID, team: str) -> StoredFile:
    row = batches_repo.get_file(session, file_id, team)
    if row is None:  # another team's file is as good as absent
        raise ApiError(404, "file_not_found", f"no file with id {file_id}", "id")
    return row
