"""drift references, job deadlines and retention purges, job feedback, skipped training runs

Versions get drift references; jobs get deadlines and the `expired` status, and retention
purges; job feedback is a table; training runs may end `skipped`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOBS_BEFORE = ("queued", "running", "succeeded", "failed", "cancelled")
_RUNS_BEFORE = ("queued", "running", "succeeded", "failed", "cancelled")  # cancelled: 0010


def _status_check(table: str, values: tuple[str, ...]) -> None:
    # Batch mode: SQLite cannot ALTER a constraint, so the table is copied there.
    listed = ", ".join(f"'{value}'" for value in values)
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_status"), f"status IN ({listed})")


def upgrade() -> None:
    _status_check("jobs", (*_JOBS_BEFORE, "expired"))
    _status_check("training_runs", (*_RUNS_BEFORE, "skipped"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_expires_at", ["expires_at"], unique=False)
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drift_reference", JSON, nullable=True))
    op.create_table(
        "job_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("input_index", sa.Integer(), nullable=False),
        sa.Column("input_text", sa.Text(), nullable=False),
        sa.Column("correction", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_feedback_job_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_feedback")),
        sa.UniqueConstraint("job_id", "input_index", name=op.f("uq_job_feedback_job_id_input_index")),
    )
    op.create_index("ix_job_feedback_model_kind_id", "job_feedback", ["model_name", "kind", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_feedback_model_kind_id", table_name="job_feedback")
    op.drop_table("job_feedback")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("drift_reference")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_expires_at")
        batch_op.drop_column("purged_at")
        batch_op.drop_column("expires_at")
    _status_check("training_runs", _RUNS_BEFORE)
    _status_check("jobs", _JOBS_BEFORE)
