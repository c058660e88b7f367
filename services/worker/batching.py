"""Dynamic batching through the job table.

A message names one job (the trigger). Claiming it, the worker also claims the other queued
jobs of its batch group (same model version, kind and params), up to the kind's input limit
(a job that finds none may wait `batch_max_delay_ms` for some): many jobs, one forward pass.

With coalesced triggers (`shared.queueing.TriggerGate`) most jobs of a busy group never get
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

from services.worker.model_cache import VersionInfo
from shared.config import Settings
from shared.db.models import Model, ModelVersion
from shared.db.session import connection_scope, get_engine
from shared.jobs import repository as jobs_repo
from shared.jobs.repository import ClaimedJob
from shared.queueing import TriggerGate


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
    return Batch(kind, {}, version_info(connection, version_id), batch_key, settings.batch_max_inputs.get(kind, 64))


def _group_batch(connection: Connection, trigger: str, settings: Settings) -> Batch:
    """An empty batch for the group a trigger key names."""
    version_id, kind, batch_key = TriggerGate.group(trigger)
    return _new_batch(connection, version_id, kind, batch_key, settings)


def _fill(connection: Connection, batch: Batch, exclude: uuid.UUID, settings: Settings) -> None:
    claimed, left_over = jobs_repo.claim_group(connection, batch.version.version_id, batch.batch_key, exclude,
                                               batch.limit - batch.num_inputs, settings.job_lease_seconds,
                                               first_always=not batch.members)
    _add(batch, claimed, left_over)


def _add(batch: Batch, claimed: list[ClaimedJob], left_over: str | None) -> None:
    batch.members += claimed
    batch.left_over = left_over
    if batch.members and not batch.params:
        batch.params = batch.members[0].params


def _delay(settings: Settings, kind: str) -> float:
    """Seconds a job of this kind that found no companions waits for some."""
    return settings.batch_max_delay_ms.get(kind, 0.0) / 1000


def _lease_held(seconds_left: float | None) -> LeaseHeld | None:
    return LeaseHeld(seconds_left) if seconds_left is not None else None


def _single_statement() -> bool:
    """Postgres claims a batch in one statement (`claim_batch_pg`); other databases in a
    transaction of several."""
    return get_engine().dialect.name == "postgresql"


def _first_look_pg(connection: Connection, job_id: uuid.UUID, trigger: str | None, settings: Settings
                   ) -> tuple[Batch | None, float | None]:
    group = TriggerGate.group(trigger) if trigger is not None else None
    found = jobs_repo.claim_batch_pg(
        connection, job_id, group and (group[0], group[2]), settings.batch_max_inputs, group and group[1],
        settings.job_lease_seconds)
    if found.lead is not None:
        lead = found.lead
        batch = _new_batch(connection, lead.version_id, lead.kind, lead.batch_key, settings)
        batch.members.append(lead)
    elif found.members:
        batch = _group_batch(connection, trigger, settings)  # type: ignore[arg-type]
    else:
        return None, found.lease_left
    _add(batch, found.members, found.left_over)
    return batch, found.lease_left


def _first_look(connection: Connection, job_id: uuid.UUID, trigger: str | None, settings: Settings
                ) -> tuple[Batch | None, float | None]:
    """Claim the job and queued jobs of its group; when the job is not claimable, the seconds
    left on its lease and, given a trigger, the trigger's group. (batch or None, lease left)."""
    if _single_statement():
        return _first_look_pg(connection, job_id, trigger, settings)
    batch = None
    lead = jobs_repo.claim_job(connection, job_id, settings.job_lease_seconds)
    if lead is not None:
        batch = _new_batch(connection, lead.version_id, lead.kind, lead.batch_key, settings)
        batch.members.append(lead)
    held = None if lead is not None else jobs_repo.lease_remaining(connection, job_id)
    if batch is None and trigger is not None:
        batch = _group_batch(connection, trigger, settings)  # the job ran elsewhere; riders wait
    if batch is not None:
        _fill(connection, batch, job_id, settings)
    return (batch if batch is not None and batch.members else None), held


def _look_again(job_id: uuid.UUID, batch: Batch | None, trigger: str | None, settings: Settings) -> Batch:
    """The last look at the group, for what arrived since the first (the job itself is not
    taken again)."""
    with connection_scope(autocommit=_single_statement()) as connection:
        batch = batch or _group_batch(connection, trigger, settings)  # type: ignore[arg-type]
        if _single_statement():
            found = jobs_repo.claim_batch_pg(
                connection, job_id, (batch.version.version_id, batch.batch_key), settings.batch_max_inputs,
                batch.kind, settings.job_lease_seconds, claim_lead=False, taken=batch.num_inputs)
            _add(batch, found.members, found.left_over)
        else:
            _fill(connection, batch, job_id, settings)
    return batch


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
    with connection_scope(autocommit=_single_statement()) as connection:
        batch, held = _first_look(connection, job_id, None if release else trigger, settings)
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
            batch = _look_again(job_id, batch, trigger, settings)
    elif batch is not None and waited > 0 and not batch.full:
        batch = _look_again(job_id, batch, trigger, settings)
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
