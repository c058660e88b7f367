"""The feedback table: one correction per (job, input index), the input's text copied."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from seqserve.shared.db.base import Base, utcnow


class JobFeedback(Base):
    """A team's correction of one input of a finished job. The input's text is copied: the
    job's inputs may be purged by retention, the feedback is training data the team gave."""

    __tablename__ = "job_feedback"
    __table_args__ = (
        UniqueConstraint("job_id", "input_index"),
        Index("ix_job_feedback_model_kind_id", "model_name", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    team: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    input_index: Mapped[int] = mapped_column(Integer)
    input_text: Mapped[str] = mapped_column(Text)
    correction: Mapped[dict[str, Any]] = mapped_column()  # {"label"} | {"tags"} | {"translation"}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
