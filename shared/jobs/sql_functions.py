"""SQL functions the job queries use, compiled per dialect (Postgres in production, SQLite for
`seqserve up` and the tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class InputCount(FunctionElement[int]):
    """The number of inputs a job holds (a JSON array's length, named per dialect)."""

    type = Integer()
    inherit_cache = True


@compiles(InputCount)
def _input_count_sqlite(element: InputCount, compiler: Any, **kw: Any) -> str:
    return f"json_array_length({compiler.process(element.clauses, **kw)})"


@compiles(InputCount, "postgresql")
def _input_count_pg(element: InputCount, compiler: Any, **kw: Any) -> str:
    return f"jsonb_array_length({compiler.process(element.clauses, **kw)})"


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


input_count = InputCount  # a job's number of inputs, for aggregates here and in other domains (corpus batches)
