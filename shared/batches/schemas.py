"""Request and response bodies of files and batches (corpus jobs)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from seqserve.shared.db.batch_models import Batch, StoredFile
from seqserve.shared.jobs.schemas import Priority, WebhookUrl
from seqserve.shared.validation import StrictText

FileFormatName = Literal["jsonl", "conllu", "text"]
WINDOW_PATTERN = r"^[1-9][0-9]{0,6}[smh]$"
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600}


def window_seconds(window: str) -> int:
    """'24h' -> 86400 (the pattern is checked by the schema)."""
    found = re.match(WINDOW_PATTERN, window)
    assert found is not None
    return int(window[:-1]) * _WINDOW_UNITS[window[-1]]


class FileRead(BaseModel):
    id: uuid.UUID
    filename: str
    bytes: int
    sha256: str
    lines: int
    format: str
    purpose: str = Field(description="input (uploaded), output or error (written by a batch).")
    created_at: datetime

    @classmethod
    def from_row(cls, row: StoredFile) -> FileRead:
        return cls(id=row.id, filename=row.filename, bytes=row.bytes, sha256=row.sha256, lines=row.lines,
                   format=row.format, purpose=row.purpose, created_at=row.created_at)


class BatchCreate(BaseModel):
    """A corpus job: every input of an uploaded file through one kind and model."""

    model_config = ConfigDict(extra="forbid")

    kind: StrictText = Field(min_length=1, max_length=64, description="Job kind, for example 'tag'.")
    model: StrictText = Field(min_length=1, max_length=256,
                              description="'name' (its production alias), 'name@alias' or 'name:version'.")
    input_file: uuid.UUID = Field(description="A file id from POST /v1/files.")
    params: dict[StrictText, Any] = Field(default_factory=dict, description="Options for the kind.")
    priority: Priority = Field("low", description="The queue its job rows take; low leaves interactive jobs ahead.")
    completion_window: str = Field(
        "24h", pattern=WINDOW_PATTERN,
        description="Deadline from creation: 'Nh', 'Nm' or 'Ns', within the server's bounds. Inputs unfinished "
        "by then are 'expired' in the error file.")
    webhook_url: WebhookUrl | None = Field(
        None, description="POSTed the batch, signed, once it ended; internal addresses are refused.")
    on_malformed: Literal["fail", "skip"] = Field(
        "fail", description="fail: a malformed line fails the batch; skip: it goes to the error file.")


class RequestCounts(BaseModel):
    total: int = Field(description="The file's inputs (malformed lines included); while validating, those read so far.")
    completed: int = Field(description="Inputs with a result, counted also while the file is still validated "
                           "(its first chunks run meanwhile).")
    failed: int = Field(description="Inputs in the error file: failed, malformed (on_malformed=skip), expired, "
                        "cancelled.")


class LineError(BaseModel):
    line: int
    message: str


class BatchRead(BaseModel):
    id: uuid.UUID
    kind: str
    model: str = Field(description="The reference as submitted.")
    model_name: str
    model_version: int
    params: dict[str, Any]
    status: str
    input_file: uuid.UUID
    output_file: uuid.UUID | None
    error_file: uuid.UUID | None
    conllu_file: uuid.UUID | None = Field(description="tag: the output as CoNLL-U (also ?format=conllu).")
    request_counts: RequestCounts
    errors: list[LineError] = Field(description="Validation errors (the first ones), with their line numbers.")
    priority: str
    on_malformed: str
    webhook_url: str | None
    created_at: datetime
    in_progress_at: datetime | None
    finalizing_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    expired_at: datetime | None
    cancelling_at: datetime | None
    cancelled_at: datetime | None
    expires_at: datetime

    @classmethod
    def from_row(cls, batch: Batch) -> BatchRead:
        return cls(
            id=batch.id, kind=batch.kind, model=batch.model_ref, model_name=batch.model_name,
            model_version=batch.version_number, params=batch.params, status=batch.status,
            input_file=batch.input_file_id, output_file=batch.output_file_id, error_file=batch.error_file_id,
            conllu_file=batch.conllu_file_id,
            request_counts=RequestCounts(total=batch.total, completed=batch.completed, failed=batch.failed),
            errors=[LineError.model_validate(error) for error in batch.errors], priority=batch.priority,
            on_malformed=batch.on_malformed, webhook_url=batch.webhook_url, created_at=batch.created_at,
            in_progress_at=batch.in_progress_at, finalizing_at=batch.finalizing_at, completed_at=batch.completed_at,
            failed_at=batch.failed_at, expired_at=batch.expired_at, cancelling_at=batch.cancelling_at,
            cancelled_at=batch.cancelled_at, expires_at=batch.expires_at,
        )


class BatchPage(BaseModel):
    items: list[BatchRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")
