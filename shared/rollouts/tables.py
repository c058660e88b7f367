"""Rollout tables: an alias's shadow / canary / policy / pending state, and one row per
shadowed job with the agreement measured on its inputs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from seqserve.shared.db.base import Base, utcnow

# Shadow jobs belong to this team: team names start with a letter or digit (API key
# schema), so no key can ever list, read or cancel them.
SHADOW_TEAM = "_shadow"


class ShadowStatus(str, enum.Enum):
    waiting = "waiting"  # the real job has not finished yet
    running = "running"  # the shadow job is queued or running
    compared = "compared"  # both finished; agreement recorded
    failed = "failed"  # the shadow job failed (the real answer was not affected)
    skipped = "skipped"  # the real job did not succeed: nothing to compare with


class AliasRollout(Base):
    """What an alias does besides pointing at its version; `previous` is the whole state
    (version included) before the last change, which rollback restores."""

    __tablename__ = "alias_rollouts"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    shadow_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    shadow_rate: Mapped[float] = mapped_column(Float, default=0.0)
    shadow_since: Mapped[datetime | None]
    # version number (as text, a JSON key) -> weight; empty: no canary.
    canary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    canary_since: Mapped[datetime | None]
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A promotion waiting for the workers to warm this version (two-phase alias move).
    pending_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    pending_since: Mapped[datetime | None]
    previous: Mapped[dict[str, Any] | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ShadowRun(Base):
    """A real job sampled for shadowing, its shadow job once the real one finished, and the
    agreement of the two answers."""

    __tablename__ = "shadow_runs"
    __table_args__ = (Index("ix_shadow_runs_alias_version", "model_id", "alias", "shadow_version_id", "status"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    shadow_job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    shadow_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ShadowStatus.waiting.value)
    inputs: Mapped[int] = mapped_column(Integer, default=0)
    agreed: Mapped[int] = mapped_column(Integer, default=0)  # inputs whose agreement >= AGREE_AT
    agreement_sum: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    compared_at: Mapped[datetime | None]
