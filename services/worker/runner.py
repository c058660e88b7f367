"""A wake-up's life in the worker: claim a batch of its group -> load -> infer -> write
results, again until the group is empty.

Each state change is its own short statement, so the rows always tell the truth: jobs are
`running` while they compute and end `succeeded` or `failed`, never stuck; a result is
written only by the attempt that holds the job.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from seqserve.services.worker import batch_driver, shadow
from seqserve.services.worker.batching import Batch, first_batch, next_batch, yields_to_interactive
from seqserve.services.worker.context import WorkerContext
from seqserve.services.worker.events import batch_events, ended, streaming
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import after_commit, session_scope
from seqserve.shared.error_text import public_error_text
from seqserve.shared.events import JobEventLog
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.repository import ClaimedJob
from seqserve.shared.metrics import (
    BATCH_COMPUTE_SECONDS,
    BATCH_INPUTS,
    BATCH_JOBS,
    BATCH_WAIT_SECONDS,
    JOB_END_TO_END_SECONDS,
    JOB_QUEUE_WAIT_SECONDS,
    JOBS_FINISHED_TOTAL,
    VERSION_JOB_SECONDS,
    VERSION_JOBS_FINISHED_TOTAL,
)
from seqserve.shared.notify import FinalState
from seqserve.shared.queueing import Wakeup, publish_wakeup, publish_webhook

log = logging.getLogger(__name__)

Outcome = tuple[JobStatus, list[Any] | None, str | None]


@dataclass
class RunReport:
    """What one wake-up did: batches and jobs run, and when to look at the group again."""

    batches: int = 0
    jobs: int = 0
    # A redelivered wake-up (its worker died mid-batch): seconds until the dead attempt's
    # lease lapses and a recovering wake-up may put its jobs back in the queue.
    retry_in: float | None = None
    handed_on: bool = False  # drain time ran out, or interactive work waits: a new wake-up has the rest

    @property
    def status(self) -> str:
        return f"{self.jobs} jobs in {self.batches} batches" if self.batches else "empty"


def _split(outputs: list[Any], members: list[ClaimedJob]) -> list[list[Any]]:
    parts, start = [], 0
    for member in members:
        parts.append(outputs[start:start + len(member.inputs)])
        start += len(member.inputs)
    return parts


def _run_handler(handler: Any, batch: Batch, members: list[ClaimedJob], events: JobEventLog | None
                 ) -> list[list[Any]]:
    inputs = [text for member in members for text in member.inputs]
    with streaming(handler, batch_events(events, members)):
        outputs = handler.run(inputs, batch.params, kind=batch.kind)
    if len(outputs) != len(inputs):
        raise RuntimeError(f"handler returned {len(outputs)} results for {len(inputs)} inputs")
    return _split(outputs, members)


def _compute(handler: Any, batch: Batch, events: JobEventLog | None = None) -> dict[uuid.UUID, Outcome]:
    """One forward pass for the whole batch; if it fails, each job alone, so one bad job
    fails by itself and its companions still succeed."""
    started = time.perf_counter()
    outcomes: dict[uuid.UUID, Outcome]
    try:
        parts = _run_handler(handler, batch, batch.members, events)
        outcomes = {m.claim.job_id: (JobStatus.succeeded, part, None)
                    for m, part in zip(batch.members, parts, strict=True)}
    except Exception as exc:
        if len(batch.members) == 1:
            log.exception("job %s failed", batch.members[0].claim.job_id)
            outcomes = {batch.members[0].claim.job_id: (JobStatus.failed, None, public_error_text(exc))}
        else:
            outcomes = {}
            for member in batch.members:
                outcomes |= _compute(handler, Batch(batch.group, batch.version, batch.limit, [member]), events)
    labels = (batch.kind, batch.version.model_name)
    BATCH_COMPUTE_SECONDS.labels(*labels).observe(time.perf_counter() - started)
    return outcomes


def _observe(batch: Batch, member: ClaimedJob, status: JobStatus) -> None:
    labels = (batch.kind, batch.version.model_name)
    JOBS_FINISHED_TOTAL.labels(*labels, status.value).inc()
    JOB_QUEUE_WAIT_SECONDS.labels(*labels).observe((member.claim.started_at - member.created_at).total_seconds())
    JOB_END_TO_END_SECONDS.labels(*labels).observe((utcnow() - member.created_at).total_seconds())
    if not shadow.is_shadow(batch.group.batch_key):
        version = (batch.version.model_name, str(batch.version.version))
        VERSION_JOBS_FINISHED_TOTAL.labels(*version, status.value).inc()
        VERSION_JOB_SECONDS.labels(*version).observe((utcnow() - member.created_at).total_seconds())


def _write(context: WorkerContext, batch: Batch, outcomes: dict[uuid.UUID, Outcome], running_event: bool = False
           ) -> None:
    """Write the results the batch's attempts may still write; once committed, tell waiters
    (with the states as committed, so they need no read) and queue the webhooks.
    `running_event`: the written jobs' `running` status event goes out with their final
    one, in the same round trip (a job whose result was dropped gets neither: another
    writer ended it, and its stream has that end already)."""
    rows = [(m.claim, *outcomes[m.claim.job_id]) for m in batch.members]
    finished_at = utcnow()
    with session_scope(autocommit=True) as session:  # each row's update stands alone
        written_ids = jobs_repo.finish_many(session, rows, finished_at)
        written = [m for m in batch.members if m.claim.job_id in written_ids]
        states = {str(m.claim.job_id): _final_state(m, outcomes[m.claim.job_id], finished_at) for m in written}
        # A corpus chunk's state stays out of the event: nobody waits on a chunk with `Prefer:
        # wait`, and its result (hundreds of inputs) was the event's bulk, encoded here and
        # parsed by every API process (a waiter that finds no state reads the row).
        publisher = after_commit(session)
        publisher.add(partial(ended, context.redis, context.events, states, running=running_event,
                              unpushed={str(m.claim.job_id) for m in written if m.batch_id}))
        for member in written:
            if member.has_webhook:
                publisher.add(partial(publish_webhook, context.celery, str(member.claim.job_id)))
        if batch_driver.steps_on_chunk_end(context.settings) and (
                ended_batches := {m.batch_id for m in written if m.batch_id}):
            publisher.add(partial(batch_driver.request_steps, context.celery, context.redis, ended_batches))
        if shadow.concerns(batch.group.batch_key, written):
            for send in shadow.publishers(context.celery, context.redis, shadow.after_finish(session, written_ids)):
                publisher.add(send)
    for member in batch.members:
        if member.claim.job_id not in written_ids:
            log.info("job %s moved on (cancelled or taken over); result dropped", member.claim.job_id)
    for member in written:
        _observe(batch, member, outcomes[member.claim.job_id][0])


def _final_state(member: ClaimedJob, outcome: Outcome, finished_at: datetime) -> FinalState:
    status, result, error = outcome
    return FinalState(status=status.value, result=result, error=error, attempts=member.claim.attempt,
                      started_at=member.claim.started_at, finished_at=finished_at)


def _fail_all(batch: Batch, exc: BaseException) -> dict[uuid.UUID, Outcome]:
    log.error("model %s v%s failed to load: %s", batch.version.model_name, batch.version.version, exc)
    return {m.claim.job_id: (JobStatus.failed, None, public_error_text(exc)) for m in batch.members}


@dataclass
class _Computed:
    """A batch's outcomes, not yet written."""

    batch: Batch
    outcomes: dict[uuid.UUID, Outcome]
    running_event: bool
    handler: Any = None  # None: the model did not load

    def write(self, context: WorkerContext) -> None:
        """Write the outcomes, then let the batch's leases go (they are renewed until here)."""
        try:
            _write(context, self.batch, self.outcomes, self.running_event)
        finally:
            context.leases.release(m.claim.job_id for m in self.batch.members)

    def observe_drift(self, context: WorkerContext) -> None:
        if self.handler is not None:
            served = [(m, self.outcomes[m.claim.job_id][1]) for m in self.batch.members
                      if self.outcomes[m.claim.job_id][0] == JobStatus.succeeded]
            context.drift.observe_jobs(self.batch.version, self.batch.kind, self.handler, served)


def _compute_batch(context: WorkerContext, batch: Batch) -> _Computed:
    labels = (batch.kind, batch.version.model_name)
    BATCH_WAIT_SECONDS.labels(*labels).observe(batch.waited_seconds)
    BATCH_INPUTS.labels(*labels).observe(batch.num_inputs)
    BATCH_JOBS.labels(*labels).observe(len(batch.members))
    try:
        handler = context.models.get(batch.version)
    except Exception as exc:  # missing file, sha256 mismatch: deterministic, no retry
        return _Computed(batch, _fail_all(batch, exc), running_event=True)
    # The `running` event is a round trip of its own only where the run streams decode steps
    # after it; otherwise it rides with the final status events (docs/benchmarks/job-path.md).
    if handler.step_events and (events := batch_events(context.events, batch.members)) is not None:
        events.status(JobStatus.running.value)
    return _Computed(batch, _compute(handler, batch, context.events), not handler.step_events, handler)


def run_batch(context: WorkerContext, batch: Batch) -> None:
    """Compute one batch and write its results (the leases of its jobs end with the write)."""
    computed = _compute_batch(context, batch)
    computed.write(context)
    computed.observe_drift(context)


def _hand_on(wakeup: Wakeup, context: WorkerContext) -> bool:
    try:
        publish_wakeup(context.celery, wakeup.model_copy(update={"recover": False}), context.redis)
    except Exception as exc:  # broker down: keep draining here rather than strand the group
        log.warning("could not hand on the rest of group %s: %s", wakeup.group, exc)
        return False
    return True


class _WriteBehind:
    """Writes a pass's results on a thread of its own while the drain claims and computes the
    next pass: the result write (JSON, the UPDATE, the events) was a third of a corpus pass's
    compute, and it mostly waits on Postgres and Redis, off the GIL (docs/benchmarks/batches.md,
    2026-12-04). One write in flight at most, so a pass's results are committed before the
    next pass's are; each job's lease is renewed until its own write ends. The thread starts
    with a drain's first write that another claim follows, so a wake-up of one pass writes
    inline as before. SQLite serialises writers anyway: there every write is inline. Off by
    default (`worker_write_behind`): the overlap takes CPU from interactive processes on the
    same host."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.enabled = context.settings.worker_write_behind and not context.settings.database_url.startswith("sqlite")
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def write(self, computed: _Computed, more: bool) -> None:
        """Write `computed`: behind, when another claim follows (`more`), else inline."""
        self.wait()
        if not (more and self.enabled):
            computed.write(self.context)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqserve-write-behind")
        self._pending = self._executor.submit(computed.write, self.context)

    def wait(self) -> None:
        """The write in flight, to its end; its error, if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)


def _drain(wakeup: Wakeup, context: WorkerContext, report: RunReport) -> None:
    started = time.monotonic()
    writes = _WriteBehind(context)
    try:
        batch = first_batch(wakeup, context)
        while batch is not None:
            computed = _compute_batch(context, batch)
            report.batches, report.jobs = report.batches + 1, report.jobs + len(batch.members)
            # A lone job that left the group empty: skip the claim that would find nothing.
            # Batches of several keep claiming: more are likely on the way, and a claim is
            # cheaper than the next wake-up's hop (docs/benchmarks/serving.md, 2026-12-02 b).
            last = len(batch.members) == 1 and jobs_repo.drained_by(batch.members)
            writes.write(computed, more=not last)
            computed.observe_drift(context)
            if last:
                return
            if (time.monotonic() - started > context.settings.wakeup_drain_seconds
                 or yields_to_interactive(batch, context)):
                writes.wait()  # the rest goes to a wake-up behind this pass's results
                if _hand_on(wakeup, context):
                    report.handed_on = True
                    return
            batch = next_batch(wakeup.group, context)
    finally:
        writes.close()


def run_wakeup(wakeup: Wakeup, context: WorkerContext, redelivered: bool = False) -> RunReport:
    """Run batches of the wake-up's group until it is empty, or hand the rest on to a new
    wake-up after `wakeup_drain_seconds` (a busy group must not hold a worker process while
    other groups, or higher-priority queues, wait behind it)."""
    report = RunReport()
    try:
        _drain(wakeup, context, report)
    finally:  # whatever went wrong, this attempt keeps no jobs alive that it no longer runs
        context.leases.release()
    if redelivered:
        with session_scope() as session:
            report.retry_in = jobs_repo.next_lease_lapse(session, wakeup.group)
    return report
