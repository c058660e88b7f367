"""batches validate and submit at once: validation's read position gets a column of its own

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 15:40:00

While a batch validated, `resume_at` was where validation read on, and chunks were submitted
only after the whole file was read (0.25-0.45 s of a 4-5 s corpus batch on 2 vCPUs,
docs/benchmarks/batches.md, 2026-12-07). The driver now submits whole chunks of the inputs
validated so far during validation, so the two positions part: `validated_to` is validation's,
`resume_at` keeps submission's and starts at the file's start. A batch validating when this
runs keeps its place: its position moves to `validated_to`, and submission starts over from the
file's start (no chunk of it exists yet).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
START = {"index": 0, "offset": 0, "line": 1, "sentence": 0}  # formats.Position()
BATCHES = sa.table("batches", sa.column("status", sa.String), sa.column("resume_at", JSON),
                   sa.column("validated_to", JSON))

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("validated_to", JSON, nullable=True))
    op.execute(BATCHES.update().where(BATCHES.c.status == "validating")
               .values(validated_to=BATCHES.c.resume_at, resume_at=START))


def downgrade() -> None:
    # A batch validating then resumes validation where it was and, at its end, submits from the
    # file's start, as before 0015: a chunk row is unique per (batch, first input), so the chunks
    # it already has are not added twice.
    op.execute(BATCHES.update().where(BATCHES.c.status == "validating").values(resume_at=BATCHES.c.validated_to))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("validated_to")
