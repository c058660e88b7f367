"""files and batches (corpus jobs); jobs may be a batch's chunk

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:51:04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('files',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('purpose', sa.String(length=8), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("format IN ('jsonl', 'conllu', 'text')", name=op.f('ck_files_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_files'))
    )
    op.create_index('ix_files_team_created_at', 'files', ['team', 'created_at'], unique=False)
    op.create_table('batches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('model_ref', sa.String(length=256), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('version_number', sa.Integer(), nullable=False),
    sa.Column('params', JSON, nullable=False),
    sa.Column('batch_key', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('on_malformed', sa.String(length=8), nullable=False),
    sa.Column('webhook_url', sa.Text(), nullable=True),
    sa.Column('input_file_id', sa.Uuid(), nullable=False),
    sa.Column('input_format', sa.String(length=8), nullable=False),
    sa.Column('output_file_id', sa.Uuid(), nullable=True),
    sa.Column('error_file_id', sa.Uuid(), nullable=True),
    sa.Column('conllu_file_id', sa.Uuid(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('malformed', sa.Integer(), nullable=False),
    sa.Column('errors', JSON, nullable=False),
    sa.Column('resume_at', JSON, nullable=True),
    sa.Column('completion_window_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('in_progress_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finalizing_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelling_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("priority IN ('high', 'normal', 'low')", name=op.f('ck_batches_priority')),
    sa.CheckConstraint("status IN ('validating', 'in_progress', 'finalizing', 'completed', 'failed', 'expired', "
                       "'cancelling', 'cancelled')", name=op.f('ck_batches_status')),
    sa.ForeignKeyConstraint(['conllu_file_id'], ['files.id'], name=op.f('fk_batches_conllu_file_id_files'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['error_file_id'], ['files.id'], name=op.f('fk_batches_error_file_id_files'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['input_file_id'], ['files.id'], name=op.f('fk_batches_input_file_id_files'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'],
                            name=op.f('fk_batches_model_version_id_model_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['output_file_id'], ['files.id'], name=op.f('fk_batches_output_file_id_files'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches'))
    )
    op.create_index('ix_batches_status', 'batches', ['status'], unique=False)
    op.create_index('ix_batches_team_created_at', 'batches', ['team', 'created_at'], unique=False)
    # Batch mode: SQLite (the embedded default) cannot add a constraint in place.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("batch_line", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_jobs_batch_id_batch_line"), ["batch_id", "batch_line"])
        batch_op.create_foreign_key(op.f("fk_jobs_batch_id_batches"), "batches", ["batch_id"], ["id"],
                                    ondelete="CASCADE")

def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_jobs_batch_id_batches"), type_="foreignkey")
        batch_op.drop_constraint(op.f("uq_jobs_batch_id_batch_line"), type_="unique")
        batch_op.drop_column("batch_line")
        batch_op.drop_column("batch_id")
    op.drop_index('ix_batches_team_created_at', table_name='batches')
    op.drop_index('ix_batches_status', table_name='batches')
    op.drop_table('batches')
    op.drop_index('ix_files_team_created_at', table_name='files')
    op.drop_table('files')
