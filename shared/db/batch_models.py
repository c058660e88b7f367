"""Tables of corpus jobs: uploaded and produced files, and the batches that run over them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from seqserve.shared.db.base import Base, new_uuid, utcnow


class FileFormat(str, enum.Enum):
    jsonl = "jsonl"
    conllu = "conllu"
    text = "text"


class BatchStatus(str, enum.Enum):
    validating = "validating"
    in_progress = "in_progress"
    finalizing = "finalizing"
    completed = "completed"
    failed = "failed"
    expired = "expired"
    cancelling = "cancelling"
    cancelled = "cancelled"


FINAL_BATCH_STATUSES = frozenset({BatchStatus.completed, BatchStatus.failed, BatchStatus.expired,
                                  BatchStatus.cancelled})
# The driver advances these; the others wait for nobody.
OPEN_BATCH_STATUSES = frozenset(BatchStatus) - FINAL_BATCH_STATUSES


def _in(column: str, enum_cls: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(member.value) for member in enum_cls)})"


class StoredFile(Base):
    """A file in the file store (seqserve.shared.storage): uploaded, or a batch's output."""

    __tablename__ = "files"
    __table_args__ = (CheckConstraint(_in("format", FileFormat), name="format"),
                      Index("ix_files_team_created_at", "team", "created_at"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    team: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    # "input" (uploaded), "output" or "error" (written by a batch).
    purpose: Mapped[str] = mapped_column(String(8), default="input")
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(Base):
    """A corpus job: the input file's inputs run as job rows (chunks) of the job machinery."""

    __tablename__ = "batches"
    __table_args__ = (CheckConstraint(_in("status", BatchStatus), name="status"),
                      CheckConstraint("priority IN ('high', 'normal', 'low')", name="priority"),
                      Index("ix_batches_team_created_at", "team", "created_at"),
                      Index("ix_batches_status", "status"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    team: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    model_ref: Mapped[str] = mapped_column(String(256))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    version_number: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    batch_key: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(8), default="low")
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.validating.value)
    on_malformed: Mapped[str] = mapped_column(String(8), default="fail")
    webhook_url: Mapped[str | None] = mapped_column(Text)
    input_file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("files.id", ondelete="RESTRICT"))
    input_format: Mapped[str] = mapped_column(String(8))  # the input file's, copied
    output_file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    error_file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    # tag batches also get their output as CoNLL-U.
    conllu_file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    total: Mapped[int] = mapped_column(Integer, default=0)  # valid inputs (+ malformed lines skipped)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    malformed: Mapped[int] = mapped_column(Integer, default=0)  # lines skipped (on_malformed=skip)
    errors: Mapped[list[Any]] = mapped_column(default=list)  # validation errors, {line, message}, bounded
    # Where the driver resumes submitting chunks (a seqserve.shared.batches.formats.Position):
    # the file's start when the batch is created, null once every input is in a job row.
    resume_at: Mapped[dict[str, Any] | None] = mapped_column()
    # Where validation reads on (a Position) while the batch is validating: null before its
    # first step and after its last.
    validated_to: Mapped[dict[str, Any] | None] = mapped_column()
    # How far the output files are written (seqserve.shared.batches.progress.OutputProgress):
    # null until the first lines are appended.
    output_progress: Mapped[dict[str, Any] | None] = mapped_column()
    completion_window_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    in_progress_at: Mapped[datetime | None]
    finalizing_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    cancelling_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
