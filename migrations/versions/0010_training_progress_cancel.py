"""training runs: progress inside an epoch, a cancel request, the `cancelled` status

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("queued", "running", "succeeded", "failed")
_AFTER = (*_BEFORE, "cancelled")


def _status_check(batch_op: object, statuses: tuple[str, ...]) -> None:
    values = ", ".join(f"'{status}'" for status in statuses)
    batch_op.drop_constraint(op.f("ck_training_runs_status"), type_="check")  # type: ignore[attr-defined]
    batch_op.create_check_constraint(op.f("ck_training_runs_status"), f"status IN ({values})")  # type: ignore[attr-defined]


def upgrade() -> None:
    # Batch mode: SQLite (the embedded default) cannot ALTER a constraint, so the table is
    # copied there; Postgres alters in place.
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "progress", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
        _status_check(batch_op, _AFTER)


def downgrade() -> None:
    op.execute("UPDATE training_runs SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        _status_check(batch_op, _BEFORE)
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("progress")
