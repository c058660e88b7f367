"""Dynamic batching through the job table.

A message names one job (the trigger). Claiming it, the worker also claims other queued jobs
for the same model version, kind and params, up to the kind's input limit, waiting at most
`batch_max_delay_ms` for more to arrive: many jobs, one forward pass. Their own messages
arrive later and find the jobs no longer claimable, which costs one conditional update (or
nothing, when this process remembers having run them).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.worker.model_cache import VersionInfo
from shared.config import Settings
from shared.db.models import Job
from shared.db.session import session_scope
from shared.jobs import repository as jobs_repo
from shared.jobs.repository import Claim


@dataclass(frozen=True)
class Member:
    claim: Claim
    inputs: list[str]
    created_at: datetime
    webhook: bool


@dataclass
class Batch:
    kind: str
    params: dict[str, Any]
    version: VersionInfo
    members: list[Member] = field(default_factory=list)
    waited_seconds: float = 0.0

    @property
    def num_inputs(self) -> int:
        return sum(len(m.inputs) for m in self.members)


@dataclass(frozen=True)
class LeaseHeld:
    """The job is running under another attempt's live lease."""

    seconds_left: float


def _member(job: Job, claim: Claim) -> Member:
    return Member(claim, list(job.inputs), job.created_at, job.webhook_url is not None)


def _add_companions(session: Session, batch: Batch, trigger: uuid.UUID, limit: int, lease: float) -> None:
    budget = limit - batch.num_inputs
    if budget <= 0:
        return
    chosen: dict[uuid.UUID, Job] = {}
    for job in jobs_repo.queued_companions(session, batch.version.version_id, batch.kind, trigger, budget):
        if job.params == batch.params and len(job.inputs) <= budget:
            chosen[job.id] = job
            budget -= len(job.inputs)
    for claim in jobs_repo.claim_locked(session, list(chosen), lease):
        batch.members.append(_member(chosen[claim.job_id], claim))


def gather(job_id: uuid.UUID, settings: Settings) -> Batch | LeaseHeld | None:
    """Claim the trigger job and its companions; None when the job is not claimable."""
    lease = settings.job_lease_seconds
    with session_scope() as session:
        claim = jobs_repo.claim(session, job_id, lease)
        if claim is None:
            left = jobs_repo.lease_remaining(session, job_id)
            return LeaseHeld(left) if left is not None else None
        job = jobs_repo.get(session, job_id)
        assert job is not None
        version = job.model_version
        info = VersionInfo(version.id, job.model_name, version.version, version.checkpoint_uri, version.sha256)
        batch = Batch(job.kind, dict(job.params), info, [_member(job, claim)])
        limit = settings.batch_max_inputs.get(job.kind, 64)
        _add_companions(session, batch, job_id, limit, lease)
    if settings.batch_max_delay_ms > 0 and batch.num_inputs < limit:
        started = time.perf_counter()
        time.sleep(settings.batch_max_delay_ms / 1000)
        with session_scope() as session:
            _add_companions(session, batch, job_id, limit, lease)
        batch.waited_seconds = time.perf_counter() - started
    return batch


class RecentIds:
    """Ids of jobs this process finished as companions, so their own messages skip the DB."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[uuid.UUID, None] = OrderedDict()

    def add(self, job_id: uuid.UUID) -> None:
        self._ids[job_id] = None
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids
