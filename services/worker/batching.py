"""Dynamic batching through the job table.

A message names one job (the trigger). Claiming it, the worker also claims the other queued
jobs of its batch group (same model version, kind and params), up to the kind's input limit
(a job that finds none may wait `batch_max_delay_ms` for some): many jobs, one forward pass.

With coalesced triggers (`seqserve.shared.queueing.TriggerGate`) most jobs of a busy group never get
a message of their own: the message carries the group's trigger key, the worker releases it
before its last look at the group, and gathers the group even when the trigger job itself was
already run by another batch. Without coalescing every job has a message; those of jobs run
as companions find them no longer claimable (or this process remembers having run them).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from seqserve.services.worker.model_cache import VersionInfo
from seqserve.shared.config import Settings
from seqserve.shared.db.models import Model, ModelVersion
from seqserve.shared.db.session import connection_scope, get_engine
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.repository import ClaimedJob
from seqserve.shared.queueing import TriggerGate


@dataclass
class Batch:
    kind: str
    params: dict
    version: VersionInfo
    batch_key: str
    limit: int  # most inputs in one forward pass for this kind
    members: list[ClaimedJob] = field(default_factory=list)
    waited_seconds: float = 0.0
    # Priority of a queued job of the group that did not fit: it needs a trigger of its own.
    left_over: str | None = None
    # The message's own job runs under another attempt's live lease (that attempt's worker may
    # have died): seconds until it lapses, so the message can look again then.
    trigger_lease_left: float | None = None

    @property
    def num_inputs(self) -> int:
        return sum(len(m.inputs) for m in self.members)

    @property
    def full(self) -> bool:
        return self.left_over is not None or self.num_inputs >= self.limit


@dataclass(frozen=True)
class LeaseHeld:
    """The job is running under another attempt's live lease."""

    seconds_left: float


# Version rows never change: one lookup per version per process.
_versions: dict[int, VersionInfo] = {}


def version_info(connection: Connection, version_id: int) -> VersionInfo:
    info = _versions.get(version_id)
    if info is None:
        row = connection.execute(
            select(Model.name, ModelVersion.version, ModelVersion.checkpoint_uri, ModelVersion.sha256)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(ModelVersion.id == version_id)
        ).one()
        info = _versions[version_id] = VersionInfo(version_id, row.name, row.version, row.checkpoint_uri, row.sha256)
    return info


def _new_batch(connection: Connection, version_id: int, kind: str, batch_key: str, settings: Settings) -> Batch:
    limit = settings.batch_max_inputs[kind]
    return Batch(kind, {}, version_info(connection, version_id), batch_key, limit)


def _delay(settings: Settings, kind: str) -> float:
    """Seconds a job of this kind that found no companions waits for some."""
    return settings.batch_max_delay_ms.get(kind, 0.0) / 1000


def _lease_held(seconds_left: float | None) -> LeaseHeld | None:
    return LeaseHeld(seconds_left) if seconds_left is not None else None


def _single_statement() -> bool:
    """Postgres claims a batch in one statement, needing no transaction around it; other
    databases in a transaction of several."""
    return get_engine().dialect.name == "postgresql"


def _look(job_id: uuid.UUID, batch: Batch | None, trigger: str | None, settings: Settings, *, claim_lead: bool
          ) -> tuple[Batch | None, float | None]:
    """One look: claim the message's job (with `claim_lead`) and queued jobs of the batch's
    group (or else the trigger's). Returns the batch (None when it is still empty) and the
    seconds left on another attempt's lease of the job."""
    if batch is not None:
        group: tuple[int, str, str] | None = (batch.version.version_id, batch.kind, batch.batch_key)
    else:
        group = TriggerGate.group(trigger) if trigger is not None else None
    single = _single_statement()
    with connection_scope(autocommit=single) as connection:
        found = jobs_repo.claim_batch(connection, job_id, group, settings.batch_max_inputs, settings.job_lease_seconds,
                                      single_statement=single, claim_lead=claim_lead,
                                      taken=batch.num_inputs if batch is not None else 0)
        if batch is None and found.lead is not None:
            lead = found.lead
            batch = _new_batch(connection, lead.version_id, lead.kind, lead.batch_key, settings)
            batch.members.append(lead)
        elif batch is None and found.members:  # the job ran elsewhere; its riders still wait
            batch = _new_batch(connection, *group, settings)  # type: ignore[misc]
    if batch is None:
        return None, found.lease_left
    batch.members += found.members
    batch.left_over = found.left_over
    if not batch.params:
        batch.params = batch.members[0].params
    return batch, found.lease_left


def gather(job_id: uuid.UUID, trigger: str | None, settings: Settings, gate: TriggerGate | None
           ) -> Batch | LeaseHeld | None:
    """Claim the message's job (if still claimable) and queued jobs of its group; None when
    nothing is left to run, LeaseHeld when the job runs under another attempt's lease.

    The trigger key is released before the last look at the group. The batching delay is
    spent only when the first look found the job alone: a backlog batches by itself. With no
    delay for the kind the key is released first, and the one look also gathers the
    trigger's group when the message's own job already ran (on Postgres, one statement)."""
    release = trigger is not None and gate is not None
    if release and not _delay(settings, TriggerGate.group(trigger)[1]):  # type: ignore[arg-type]
        gate.release(trigger, str(job_id))  # type: ignore[union-attr]
        release = False
    batch, held = _look(job_id, None, None if release else trigger, settings, claim_lead=True)
    if batch is None and trigger is None:
        return _lease_held(held)
    waited = 0.0
    delay = _delay(settings, batch.kind) if batch is not None else 0.0
    if batch is not None and len(batch.members) == 1 and not batch.full and delay:
        started = time.perf_counter()
        time.sleep(delay)
        waited = time.perf_counter() - started
    if release:
        # Released before the last look: a job that saw the key set committed before this.
        gate.release(trigger, str(job_id))  # type: ignore[union-attr]
        if batch is None or not batch.full:
            batch, _ = _look(job_id, batch, trigger, settings, claim_lead=False)
    elif batch is not None and waited > 0 and not batch.full:
        batch, _ = _look(job_id, batch, trigger, settings, claim_lead=False)
    if batch is None or not batch.members:
        return _lease_held(held)
    batch.waited_seconds = waited
    batch.trigger_lease_left = held
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
