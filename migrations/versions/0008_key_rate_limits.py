"""per-key limits: submissions per window, inputs per minute, max priority

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: existing keys take the SEQSERVE_RATE_LIMIT_* defaults.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("inputs_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_priority", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_priority")
        batch_op.drop_column("inputs_per_minute")
        batch_op.drop_column("rate_limit")
