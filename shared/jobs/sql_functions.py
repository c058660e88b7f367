"""SQL functions the job queries use, compiled per dialect (Postgres in production, SQLite for
`seqserve up` and the tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class QueuedSeen(FunctionElement[int]):
    """The number of queued rows a subquery counts, in the claim statement's own snapshot
    (Postgres: a statement sees the rows it updates as they were); NULL on SQLite, whose
    RETURNING subqueries see the update half done."""

    type = Integer()
    inherit_cache = True


@compiles(QueuedSeen)
def _queued_seen_sqlite(element: QueuedSeen, compiler: Any, **kw: Any) -> str:
    return "NULL"


@compiles(QueuedSeen, "postgresql")
def _queued_seen_pg(element: QueuedSeen, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))
