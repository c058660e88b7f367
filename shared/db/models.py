"""Tables: the model registry (models, versions, aliases), training runs and jobs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from seqserve.shared.db.base import Base, new_uuid, utcnow
from seqserve.shared.tasks import TASKS

# What a model does; decides which job kinds it serves (the registry: seqserve.shared.tasks).
Task = enum.Enum("Task", {name: name for name in TASKS}, type=str)  # type: ignore[misc]


# Jobs from before keys existed, and every job while auth is off, belong to this team.
DEFAULT_TEAM = "default"


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    expired = "expired"  # its deadline passed while it was queued: it never ran


FINAL_JOB_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.expired})


class RunStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"  # a scheduled run with no new data (config["skipped"] says why)
    cancelled = "cancelled"  # POST /v1/training-runs/{id}/cancel; registers nothing


def _in(column: str, enum_cls: type[enum.Enum]) -> str:
    values = ", ".join(f"'{member.value}'" for member in enum_cls)
    return f"{column} IN ({values})"


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (CheckConstraint(_in("task", Task), name="task"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    task: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", order_by="ModelVersion.version"
    )
    aliases: Mapped[list[ModelAlias]] = relationship(back_populates="model", order_by="ModelAlias.alias")


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = (CheckConstraint(_in("status", RunStatus), name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    model_name: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(16))
    preset: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.queued.value)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    history: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    progress: Mapped[dict[str, Any] | None]  # inside the current epoch (shared/training/progress.py)
    cancel_requested_at: Mapped[datetime | None]  # the trainer stops at its next batch


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[dict[str, Any]] = mapped_column(default=dict)
    train_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkpoint_uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    primary_metric: Mapped[str] = mapped_column(String(32))
    dataset_fingerprint: Mapped[str] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(64), default="")
    artifacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    promotion_note: Mapped[str] = mapped_column(Text, default="")
    training_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL")
    )
    # Training-data input and dev prediction statistics (seqserve.shared.drift); None: the
    # version was registered before they were recorded.
    drift_reference: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[Model] = relationship(back_populates="versions")


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    model: Mapped[Model] = relationship(back_populates="aliases")
    version: Mapped[ModelVersion] = relationship()


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JobStatus), name="status"),
        CheckConstraint("priority IN ('high', 'normal', 'low')", name="priority"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_version_status", "model_version_id", "status"),
        Index("ix_jobs_batch_group", "model_version_id", "batch_key", "status"),
        Index("ix_jobs_finished_at", "finished_at"),
        Index("ix_jobs_team_created_at", "team", "created_at"),
        Index("ix_jobs_expires_at", "expires_at"),
        UniqueConstraint("team", "idempotency_key"),
        UniqueConstraint("batch_id", "batch_line"),  # a re-run of the batch driver never duplicates a chunk
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(128))
    model_ref: Mapped[str] = mapped_column(String(256))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    # The version's number, copied at submission so reads need no join.
    version_number: Mapped[int] = mapped_column(Integer, server_default="0")
    inputs: Mapped[list[Any]] = mapped_column()
    # len(inputs), kept by the database (migration 0014: STORED on Postgres, VIRTUAL on SQLite),
    # so that claims and a batch's counts read an integer instead of detoasting every row's
    # inputs (docs/benchmarks/batches.md, 2026-12-06). The DDL is the migration's; the
    # expression here is Postgres's and only marks the column as generated.
    num_inputs: Mapped[int] = mapped_column(Computed("jsonb_array_length(inputs)", persisted=True))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # kind + params digest: queued jobs of one version with one batch key share a forward pass.
    batch_key: Mapped[str] = mapped_column(String(32), server_default="")
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    result: Mapped[list[Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    # Each claim increments `attempts`; a result is written only by the attempt that holds
    # the job (a fencing token), and a claim lapses at `lease_expires_at`.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None]
    # Last time a message for this job was published; the reconciler re-publishes from it.
    enqueued_at: Mapped[datetime | None]
    # The submitting key's team: reads, lists and idempotency keys are per team.
    team: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_TEAM)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Retention (seqserve.shared.jobs.lifecycle): a queued job past `expires_at` ends
    # `expired`; a purged job keeps its metadata, its inputs and result are gone.
    expires_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]
    # A corpus job's chunk: its batch and the index of its first input there (seqserve.shared.batches).
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    batch_line: Mapped[int | None] = mapped_column(Integer)

    model_version: Mapped[ModelVersion] = relationship()


class ApiKey(Base):
    """A client's key: only the secret's sha256 is stored, with a short clear prefix to find it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    team: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]] = mapped_column()
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Per-key limits (shared/auth/limits.py); NULL: the SEQSERVE_RATE_LIMIT_* default.
    rate_limit: Mapped[str | None] = mapped_column(String(16))
    inputs_per_minute: Mapped[int | None]
    max_priority: Mapped[str | None] = mapped_column(String(8))


class AuditEvent(Base):
    """One change worth knowing who made: an alias move, a key change, a training run started."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action_id", "action", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # a key name, "cli" or "gate"
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebhookDelivery(Base):
    """One attempt to POST a job's final state to its webhook URL."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueHeartbeat(Base):
    """Proof that a worker consumed from a queue: a canary task sets `consumed_at`."""

    __tablename__ = "queue_heartbeats"

    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    canary_sent_at: Mapped[datetime | None]
    consumed_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))


from seqserve.shared.db import batch_models  # noqa: E402,F401  (files and batches: the tables jobs refer to)
from seqserve.shared.feedback.models import JobFeedback  # noqa: E402,F401  (registers its table)
from seqserve.shared.rollouts import tables as _rollout_tables  # noqa: E402,F401  (rollout tables on the metadata)
