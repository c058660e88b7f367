"""Group commit of concurrent job submissions inside one API process.

Requests hand their submission (validation and row building, as a function of a session) to
the process's `SubmitGroups`; one thread of its own takes every submission that arrived while
its previous write ran, validates each, inserts all valid rows in one statement (autocommit:
they are committed together), then publishes one wake-up per batch group, and only then
answers each request. Nothing is given up: a request is answered only after its row is
committed and its group's wake-up published; a refused publish withdraws the whole group.

No timer: at one client each submission is written alone at once; under load the groups
grow by themselves (what arrives during one write shares the next). Measured in
docs/benchmarks/serving.md (bench/cost_per_job.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError
from seqserve.services.api.jobs import service
from seqserve.services.api.jobs.service import JobQueue
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs.schemas import JobRead
from seqserve.shared.rollouts.routing import Route

log = logging.getLogger(__name__)

Prepare = Callable[[Session], tuple[dict[str, Any], Route]]
_Pending = tuple[Prepare, "asyncio.Future[JobRead]"]


class SubmitGroups:
    """One per API process (app state), owning the thread that writes the groups."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._pending: list[_Pending] = []
        self._writing = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="submit-groups")

    async def submit(self, prepare: Prepare) -> JobRead:
        """The job as inserted, once its row is committed and its wake-up published; the
        submission's own ApiError (a check it failed) or the group's write error otherwise."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobRead] = loop.create_future()
        self._pending.append((prepare, future))
        if not self._writing:
            self._writing = True
            loop.create_task(self._write_all(loop))
        return await future

    async def _write_all(self, loop: asyncio.AbstractEventLoop) -> None:
        group: list[_Pending] = []
        try:
            while self._pending:
                group, self._pending = self._pending, []
                outcomes = await loop.run_in_executor(self._executor, _write_group, self._queue, group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():  # the request was cancelled (client gone); its job stands
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        except BaseException as exc:  # never strand a waiting request
            for _, future in [*group, *self._pending]:
                if not future.done():
                    future.set_exception(exc)
            self._pending = []
            raise
        finally:
            self._writing = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _write_group(queue: JobQueue, group: list[_Pending]) -> list[JobRead | BaseException]:
    """Prepare each submission, then one INSERT and one publish per batch group for all that
    passed their checks; returns an outcome per submission, in order."""
    outcomes: list[JobRead | BaseException] = []
    try:
        with session_scope(autocommit=True) as session:
            prepared = []
            for prepare, _ in group:
                try:
                    row, chosen = prepare(session)
                except ApiError as exc:  # this request's own check: its companions go on
                    outcomes.append(exc)
                    continue
                prepared.append((row, chosen))
                outcomes.append(JobRead.from_values(row))
            if prepared:
                service.insert_group(session, queue, prepared)
    except Exception as exc:  # the write or the publish failed: every job of the group fails with it
        log.debug("group of %d submissions failed: %s", len(group), exc)
        failed: list[JobRead | BaseException] = [exc if isinstance(o, JobRead) else o for o in outcomes]
        return failed + [exc] * (len(group) - len(outcomes))
    return outcomes
