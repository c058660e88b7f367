"""rollouts: an alias's shadow, canary, promotion policy and pending (warming) version; shadow runs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UUID = sa.Uuid()

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alias_rollouts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("shadow_version_id", sa.Integer(), nullable=True),
        sa.Column("shadow_rate", sa.Float(), nullable=False),
        sa.Column("shadow_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canary", JSON, nullable=False),
        sa.Column("canary_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("pending_version_id", sa.Integer(), nullable=True),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous", JSON, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_alias_rollouts_model_id_models"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shadow_version_id"], ["model_versions.id"],
                                name=op.f("fk_alias_rollouts_shadow_version_id_model_versions"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["pending_version_id"], ["model_versions.id"],
                                name=op.f("fk_alias_rollouts_pending_version_id_model_versions"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_alias_rollouts")),
    )
    op.create_table(
        "shadow_runs",
        sa.Column("job_id", UUID, nullable=False),
        sa.Column("shadow_job_id", UUID, nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("shadow_version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("inputs", sa.Integer(), nullable=False),
        sa.Column("agreed", sa.Integer(), nullable=False),
        sa.Column("agreement_sum", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("compared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_shadow_runs_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shadow_job_id"], ["jobs.id"], name=op.f("fk_shadow_runs_shadow_job_id_jobs"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_shadow_runs_model_id_models"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shadow_version_id"], ["model_versions.id"],
                                name=op.f("fk_shadow_runs_shadow_version_id_model_versions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_shadow_runs")),
    )
    op.create_index("ix_shadow_runs_shadow_job_id", "shadow_runs", ["shadow_job_id"], unique=False)
    op.create_index("ix_shadow_runs_alias_version", "shadow_runs",
                    ["model_id", "alias", "shadow_version_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_shadow_runs_alias_version", table_name="shadow_runs")
    op.drop_index("ix_shadow_runs_shadow_job_id", table_name="shadow_runs")
    op.drop_table("shadow_runs")
    op.drop_table("alias_rollouts")
