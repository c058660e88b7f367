"""jobs batch key: the group a job can be batched with, indexed for the worker's gather

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows from before have an empty key: they batch only with each other, and still run.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_key", sa.String(length=32), server_default="", nullable=False))
        batch_op.create_index("ix_jobs_batch_group", ["model_version_id", "batch_key", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_batch_group")
        batch_op.drop_column("batch_key")
