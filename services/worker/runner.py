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
from datetime import datetime, timezone
from typing import Any

from services.worker.batching import Batch, LeaseHeld, Member, RecentIds, gather
from services.worker.model_cache import ModelCache
from shared.config import get_settings
from shared.db.base import utcnow
from shared.db.models import JobStatus
from shared.db.session import session_scope
from shared.jobs import repository as jobs_repo
from shared.metrics import (
    BATCH_COMPUTE_SECONDS,
    BATCH_INPUTS,
    BATCH_JOBS,
    BATCH_WAIT_SECONDS,
    JOB_END_TO_END_SECONDS,
    JOB_QUEUE_WAIT_SECONDS,
    JOBS_FINISHED_TOTAL,
)
from shared.notify import publish_finished

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


def _split(outputs: list[Any], members: list[Member]) -> list[list[Any]]:
    parts, start = [], 0
    for member in members:
        parts.append(outputs[start:start + len(member.inputs)])
        start += len(member.inputs)
    return parts


def _run_handler(handler: Any, batch: Batch, members: list[Member]) -> list[list[Any]]:
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
                outcomes |= _compute(handler, Batch(batch.kind, batch.params, batch.version, [member]))
    labels = (batch.kind, batch.version.model_name)
    BATCH_COMPUTE_SECONDS.labels(*labels).observe(time.perf_counter() - started)
    return outcomes


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _observe(batch: Batch, member: Member, status: JobStatus) -> None:
    labels = (batch.kind, batch.version.model_name)
    JOBS_FINISHED_TOTAL.labels(*labels, status.value).inc()
    created = _aware(member.created_at)
    JOB_QUEUE_WAIT_SECONDS.labels(*labels).observe((member.claim.started_at - created).total_seconds())
    JOB_END_TO_END_SECONDS.labels(*labels).observe((utcnow() - created).total_seconds())


def _write(batch: Batch, outcomes: dict[uuid.UUID, Outcome]) -> RunReport:
    written: list[Member] = []
    with session_scope() as session:
        for member in batch.members:
            status, result, error = outcomes[member.claim.job_id]
            if jobs_repo.finish(session, member.claim, status, result, error):
                written.append(member)
            else:
                log.info("job %s moved on (cancelled or taken over); result dropped", member.claim.job_id)
    for member in batch.members:
        _recent.add(member.claim.job_id)
    for member in written:
        _observe(batch, member, outcomes[member.claim.job_id][0])
    publish_finished(get_settings(), [str(m.claim.job_id) for m in written])
    trigger_status = outcomes[batch.members[0].claim.job_id][0].value
    return RunReport(trigger_status, webhooks_due=[str(m.claim.job_id) for m in written if m.webhook])


def _fail_all(batch: Batch, exc: BaseException) -> dict[uuid.UUID, Outcome]:
    log.error("model %s v%s failed to load: %s", batch.version.model_name, batch.version.version, exc)
    return {m.claim.job_id: (JobStatus.failed, None, _error_text(exc)) for m in batch.members}


def run_job(job_id: str) -> RunReport:
    """Run the job a message names, with whatever companions it can batch."""
    trigger = uuid.UUID(job_id)
    if trigger in _recent:
        return RunReport("skipped")
    gathered = gather(trigger, get_settings())
    if gathered is None:
        return RunReport("skipped")
    if isinstance(gathered, LeaseHeld):
        return RunReport("lease_held", lease_seconds_left=gathered.seconds_left)
    batch = gathered
    labels = (batch.kind, batch.version.model_name)
    BATCH_WAIT_SECONDS.labels(*labels).observe(batch.waited_seconds)
    BATCH_INPUTS.labels(*labels).observe(batch.num_inputs)
    BATCH_JOBS.labels(*labels).observe(len(batch.members))
    try:
        handler = _cache.get(batch.version)
    except Exception as exc:  # missing file, sha256 mismatch: deterministic, no retry
        return _write(batch, _fail_all(batch, exc))
    return _write(batch, _compute(handler, batch))
