"""jobs version number

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 14:38:27.818025
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "version_number", sa.Integer(), server_default="0", nullable=False
            )
        )
    op.execute(
        "UPDATE jobs SET version_number = "
        "(SELECT version FROM model_versions WHERE model_versions.id = jobs.model_version_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("version_number")
