"""A batch's job events (seqserve.shared.events): status changes, and the per-step sink the
decode loops call (`StagedHandler.event_sink`), which maps batch rows back to jobs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

from redis import Redis, RedisError

from seqserve.shared.db.models import JobStatus
from seqserve.shared.events import SENTENCE, STATUS, TOKEN, JobEvent, JobEventLog
from seqserve.shared.jobs.repository import ClaimedJob
from seqserve.shared.notify import FinalState, JobsFinished, queue_finished

logger = logging.getLogger(__name__)


class EventSink(Protocol):
    """What a handler's decode loop may report; indices are the batch's input indices."""

    def tokens(self, step: int, tokens: dict[int, str]) -> None: ...

    def sentences(self, texts: dict[int, str]) -> None: ...


class BatchEvents:
    """The events of one batch's jobs, whose inputs the handler sees concatenated in member order."""

    def __init__(self, log: JobEventLog, members: Sequence[ClaimedJob]) -> None:
        self.log = log
        self.owners: list[tuple[str, int]] = []  # batch input index -> (job id, input index in the job)
        self.sizes: dict[str, int] = {}
        for member in members:
            job_id = str(member.claim.job_id)
            self.owners += [(job_id, index) for index in range(len(member.inputs))]
            self.sizes[job_id] = len(member.inputs)

    def status(self, status: str) -> None:
        self.log.publish(JobEvent(job_id, STATUS, {"status": status}) for job_id in self.sizes)

    def tokens(self, step: int, tokens: dict[int, str]) -> None:
        per_job: dict[str, list[str]] = {job_id: [""] * size for job_id, size in self.sizes.items()}
        for batch_index, token in tokens.items():
            job_id, index = self.owners[batch_index]
            per_job[job_id][index] = token
        self.log.publish(JobEvent(job_id, TOKEN, {"step": step, "tokens": words}) for job_id, words in per_job.items())

    def sentences(self, texts: dict[int, str]) -> None:
        per_job: dict[str, dict[str, str]] = {}
        for batch_index, text in texts.items():
            job_id, index = self.owners[batch_index]
            per_job.setdefault(job_id, {})[str(index)] = text
        self.log.publish(JobEvent(job_id, SENTENCE, {"translations": done}) for job_id, done in per_job.items())


def batch_events(log: JobEventLog | None, members: Sequence[ClaimedJob]) -> BatchEvents | None:
    return None if log is None else BatchEvents(log, members)


@contextlib.contextmanager
def streaming(handler: Any, events: BatchEvents | None) -> Iterator[None]:
    """The handler reports this thread's decode steps to `events` for the duration (the sink is
    per thread: the warm-up thread may run the same handler meanwhile)."""
    handler.event_sink = events
    try:
        yield
    finally:
        handler.event_sink = None


def ended(redis: Redis | None, log: JobEventLog | None, states: dict[str, FinalState], running: bool = False,
          unpushed: Collection[str] = ()) -> None:
    """After the commit that wrote them: the jobs' finished event (for `Prefer: wait`; with
    their states as committed, so a waiter needs no read, but for the `unpushed` ones) and
    each one's final status event (its stream), in one Redis round trip; with `running`,
    each stream's `running` event first. Best effort, like each of them alone: the job rows
    stay the source of truth."""
    if redis is None or not states:
        return
    pipe = redis.pipeline(transaction=False)
    pushed = {job_id: state for job_id, state in states.items() if job_id not in unpushed}
    queue_finished(pipe, JobsFinished(ids=list(states), states=pushed))
    if log is not None:
        statuses = ([JobEvent(job_id, STATUS, {"status": JobStatus.running.value}) for job_id in states]
                    if running else [])
        statuses += [JobEvent(job_id, STATUS, {"status": state.status}) for job_id, state in states.items()]
        log.add(pipe, statuses)
    try:
        pipe.execute()
    except RedisError as exc:
        logger.warning("job-finished and job events dropped (%d jobs): %s", len(states), exc)
