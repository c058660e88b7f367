"""Feedback request and response bodies: per input index, the correction its job's kind takes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from seqserve.shared.feedback.models import JobFeedback
from seqserve.shared.validation import StrictText

# The kinds whose answers a correction can replace, and the one field each correction sets.
CORRECTION_FIELDS = {"classify": "label", "tag": "tags", "translate": "translation"}
Label = Annotated[StrictText, Field(min_length=1, max_length=64)]


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=100_000, strict=True, description="Which input of the job (0-based).")
    label: Label | None = Field(None, description="classify: the right label, one of the model's.")
    tags: list[Label] | None = Field(None, max_length=2000, description="tag: one tag per token of the result.")
    translation: StrictText | None = Field(None, min_length=1, max_length=4000, description="translate.")


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackItem] = Field(min_length=1, max_length=1000)


class FeedbackRead(BaseModel):
    job_id: uuid.UUID
    index: int
    input: str
    correction: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: JobFeedback) -> FeedbackRead:
        return cls(job_id=row.job_id, index=row.input_index, input=row.input_text, correction=row.correction,
                   created_at=row.created_at)
