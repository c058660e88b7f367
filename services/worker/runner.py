"""A message's life in the worker: gather a batch -> load -> infer -> write results.

Each state change is its own short transaction, so the rows always tell the truth: jobs are
`running` while they compute and end `succeeded` or `failed`, never stuck; a result is
written only by the attempt that holds the job.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from seqserve.services.worker.batching import Batch, LeaseHeld, RecentIds, gather
from seqserve.services.worker.model_cache import ModelCache
from seqserve.shared.config import get_settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import JobStatus
from seqserve.shared.db.session import connection_scope
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
)
from seqserve.shared.notify import publish_finished
from seqserve.shared.queueing import TriggerGate, trigger_gate

log = logging.getLogger(__name__)
_cache = ModelCache()
_recent = RecentIds()

Outcome = tuple[JobStatus, list[Any] | None, str | None]


@dataclass
class RunReport:
    """What one message did: its status, and the jobs whose webhooks are now due."""

    status: str
    lease_seconds_left: float | None = None
    webhooks_due: list[str] = field(default_factory=list)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _split(outputs: list[Any], members: list[ClaimedJob]) -> list[list[Any]]:
    parts, start = [], 0
    for member in members:
        parts.append(outputs[start:start + len(member.inputs)])
        start += len(member.inputs)
    return parts


def _run_handler(handler: Any, batch: Batch, members: list[ClaimedJob]) -> list[list[Any]]:
    inputs = [text for member in members for text in member.inputs]
    outputs = handler.run(inputs, batch.params, kind=batch.kind)
    if len(outputs) != len(inputs):
        raise RuntimeError(f"handler returned {len(outputs)} results for {len(inputs)} inputs")
    return _split(outputs, members)


def _compute(handler: Any, batch: Batch) -> dict[uuid.UUID, Outcome]:
    """One forward pass for the whole batch; if it fails, each job alone, so one bad job
    fails by itself and its companions still succeed."""
    started = time.perf_counter()
    try:
        parts = _run_handler(handler, batch, batch.members)
        outcomes = {m.claim.job_id: (JobStatus.succeeded, part, None) for m, part in zip(batch.members, parts)}
    except Exception as exc:
        if len(batch.members) == 1:
            log.exception("job %s failed", batch.members[0].claim.job_id)
            outcomes = {batch.members[0].claim.job_id: (JobStatus.failed, None, _error_text(exc))}
        else:
            outcomes = {}
            for member in batch.members:
                alone = Batch(batch.kind, batch.params, batch.version, batch.batch_key, batch.limit, [member])
                outcomes |= _compute(handler, alone)
    labels = (batch.kind, batch.version.model_name)
    BATCH_COMPUTE_SECONDS.labels(*labels).observe(time.perf_counter() - started)
    return outcomes


def _observe(batch: Batch, member: ClaimedJob, status: JobStatus) -> None:
    labels = (batch.kind, batch.version.model_name)
    JOBS_FINISHED_TOTAL.labels(*labels, status.value).inc()
    JOB_QUEUE_WAIT_SECONDS.labels(*labels).observe((member.claim.started_at - member.created_at).total_seconds())
    JOB_END_TO_END_SECONDS.labels(*labels).observe((utcnow() - member.created_at).total_seconds())


def _write(batch: Batch, outcomes: dict[uuid.UUID, Outcome]) -> RunReport:
    rows = [(m.claim, *outcomes[m.claim.job_id]) for m in batch.members]
    finished_at = utcnow()
    with connection_scope(autocommit=True) as connection:  # each row's update stands alone
        written_ids = jobs_repo.finish_many(connection, rows, finished_at)
    written = [m for m in batch.members if m.claim.job_id in written_ids]
    for member in batch.members:
        _recent.add(member.claim.job_id)
        if member.claim.job_id not in written_ids:
            log.info("job %s moved on (cancelled or taken over); result dropped", member.claim.job_id)
    for member in written:
        _observe(batch, member, outcomes[member.claim.job_id][0])
    states = {}  # exactly what was committed: waiters answer from it without a read
    for member in written:
        status, result, error = outcomes[member.claim.job_id]
        states[str(member.claim.job_id)] = {
            "status": status.value, "result": result, "error": error, "attempts": member.claim.attempt,
            "started_at": member.claim.started_at.isoformat(), "finished_at": finished_at.isoformat(),
        }
    publish_finished(get_settings(), list(states), states)
    trigger_status = outcomes[batch.members[0].claim.job_id][0].value
    return RunReport(trigger_status, webhooks_due=[str(m.claim.job_id) for m in written if m.has_webhook])


def _fail_all(batch: Batch, exc: BaseException) -> dict[uuid.UUID, Outcome]:
    log.error("model %s v%s failed to load: %s", batch.version.model_name, batch.version.version, exc)
    return {m.claim.job_id: (JobStatus.failed, None, _error_text(exc)) for m in batch.members}


def _retrigger_left_over(batch: Batch, gate: TriggerGate | None) -> None:
    """Queued jobs of the group did not fit: make sure a message will come for them."""
    if batch.left_over is None or gate is None:
        return  # without coalescing every job has its own message
    key = TriggerGate.key(batch.version.version_id, batch.kind, batch.batch_key, batch.left_over)
    lead = str(batch.members[0].claim.job_id)  # no longer claimable: its message gathers the group
    try:
        gate.publish_if_first(key, lead, batch.left_over)
    except Exception as exc:  # the broker is down: this batch still runs; the reconciler finds the rest
        log.warning("could not publish a trigger for the rest of %s: %s", key, exc)


def run_job(job_id: str, trigger: str | None = None) -> RunReport:
    """Run the job a message names, with whatever companions it can batch. `trigger`: the
    coalescing key the message holds."""
    trigger_id = uuid.UUID(job_id)
    if trigger is None and trigger_id in _recent:
        return RunReport("skipped")
    settings = get_settings()
    gate = trigger_gate(settings)
    gathered = gather(trigger_id, trigger, settings, gate)
    if gathered is None:
        return RunReport("skipped")
    if isinstance(gathered, LeaseHeld):
        return RunReport("lease_held", lease_seconds_left=gathered.seconds_left)
    batch = gathered
    _retrigger_left_over(batch, gate)
    labels = (batch.kind, batch.version.model_name)
    BATCH_WAIT_SECONDS.labels(*labels).observe(batch.waited_seconds)
    BATCH_INPUTS.labels(*labels).observe(batch.num_inputs)
    BATCH_JOBS.labels(*labels).observe(len(batch.members))
    try:
        handler = _cache.get(batch.version)
    except Exception as exc:  # missing file, sha256 mismatch: deterministic, no retry
        report = _write(batch, _fail_all(batch, exc))
    else:
        report = _write(batch, _compute(handler, batch))
    if batch.trigger_lease_left is not None:
        # The message's own job is held by another attempt: look at it again when that lapses.
        report.status, report.lease_seconds_left = "lease_held", batch.trigger_lease_left
    return report
