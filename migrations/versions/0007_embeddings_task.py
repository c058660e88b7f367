"""models.task may be 'embeddings' (word vectors, shared/tasks.py)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("classify", "tag", "generate", "translate")
_AFTER = (*_BEFORE, "embeddings")


def _check(tasks: tuple[str, ...]) -> None:
    # Batch mode: SQLite (the embedded default) cannot ALTER a constraint, so the table is
    # copied there; Postgres alters in place.
    values = ", ".join(f"'{task}'" for task in tasks)
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_models_task"), type_="check")
        batch_op.create_check_constraint(op.f("ck_models_task"), f"task IN ({values})")


def upgrade() -> None:
    _check(_AFTER)


def downgrade() -> None:
    _check(_BEFORE)
