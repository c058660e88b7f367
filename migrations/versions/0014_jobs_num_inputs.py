"""jobs keep their number of inputs in a generated column, and compress inputs and results with lz4

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 22:10:00

`num_inputs` is len(inputs), computed by the database: STORED on Postgres (adding it rewrites
the table once, under an exclusive lock: on a large jobs table, run this in a quiet window),
VIRTUAL on SQLite (which can add no stored column). Claims and a corpus batch's counts read it
instead of detoasting every row's inputs: a batch's progress count did that for each of its
chunks on every driver step, the busiest statement on Postgres during a corpus batch.

lz4 (Postgres 14+, where the server was built with it) compresses large inputs and results
faster than the default pglz: a 128-sentence tag result's UPDATE took 1.3 ms instead of 2.3 ms
on an idle server (docs/benchmarks/batches.md, 2026-12-06). It applies to values written from
now on; a server without lz4 keeps pglz.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs ADD COLUMN num_inputs integer GENERATED ALWAYS AS (jsonb_array_length(inputs)) "
                   "STORED")
        savepoint = bind.begin_nested()
        try:
            bind.exec_driver_sql("ALTER TABLE jobs ALTER COLUMN inputs SET COMPRESSION lz4, "
                                 "ALTER COLUMN result SET COMPRESSION lz4")
            savepoint.commit()
        except DBAPIError:  # built without lz4 (or older than 14): pglz, as before
            savepoint.rollback()
    else:
        op.execute("ALTER TABLE jobs ADD COLUMN num_inputs INTEGER GENERATED ALWAYS AS (json_array_length(inputs)) "
                   "VIRTUAL")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs ALTER COLUMN inputs SET COMPRESSION default, "
                   "ALTER COLUMN result SET COMPRESSION default")
    op.execute("ALTER TABLE jobs DROP COLUMN num_inputs")
