"""Dynamic batching through the job table: the table is the queue.

A wake-up names a batch group (model version, kind, batch key). The worker claims the
group's next batch (queued jobs in priority-then-age order, up to the kind's input limit,
low-priority ones only when no other waits in the group;
`seqserve.shared.jobs.repository.claim_batch`), runs it, and claims again until the group is
empty: many jobs, one forward pass. A first batch holding one job may wait the kind's
`batch_max_delay_ms` for companions. A pass of low-priority jobs (a corpus batch's chunks)
yields to interactive work waiting in other groups (`yields_to_interactive`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from seqserve.services.worker.context import WorkerContext
from seqserve.services.worker.model_cache import VersionInfo
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.repository import PRIORITY_ORDER, BatchGroup, ClaimedJob
from seqserve.shared.queueing import Wakeup, queue_for


@dataclass
class Batch:
    group: BatchGroup
    version: VersionInfo
    limit: int  # most inputs in one forward pass for this kind
    members: list[ClaimedJob] = field(default_factory=list)
    waited_seconds: float = 0.0

    @property
    def kind(self) -> str:
        return self.group.kind

    @property
    def params(self) -> dict[str, Any]:
        return self.members[0].params  # one batch key: one set of params

    @property
    def num_inputs(self) -> int:
        return sum(len(m.inputs) for m in self.members)

    @property
    def full(self) -> bool:
        return self.num_inputs >= self.limit


@functools.cache
def _consumed_priorities(worker_queues: str) -> tuple[str, ...]:
    """The priorities whose inference queues `worker_queues` names, highest first."""
    served = set(worker_queues.split(","))
    return tuple(p for p in PRIORITY_ORDER if queue_for(p) in served)


def served_priorities(worker_queues: str) -> tuple[str, ...]:
    """The job priorities a worker consuming `worker_queues` claims: those whose queues it
    consumes. An interactive lane (inference.high,inference.normal) then never runs a corpus's
    low-priority chunks: they shared its group when the probe's model was the corpus's, and
    its next interactive job waited behind them (docs/benchmarks/batches.md, 2026-12-06). A
    worker that consumes no inference queue (none of its wake-ups run here) claims all."""
    return _consumed_priorities(worker_queues) or tuple(PRIORITY_ORDER)


def _claim(context: WorkerContext, group: BatchGroup, taken: int = 0) -> list[ClaimedJob]:
    settings = context.settings
    with session_scope(autocommit=True) as session:  # one atomic statement: no transaction around it
        claimed = jobs_repo.claim_batch(session, group, settings.batch_max_inputs[group.kind],
                                        settings.job_lease_seconds, taken,
                                        served_priorities(settings.worker_queues))
    context.leases.hold(job.claim for job in claimed)  # renewed until written or the wake-up ends
    return claimed


def _batch(context: WorkerContext, group: BatchGroup, members: list[ClaimedJob], waited: float = 0.0) -> Batch:
    return Batch(group, context.version(group.version_id), context.settings.batch_max_inputs[group.kind], members, waited)


def first_batch(wakeup: Wakeup, context: WorkerContext) -> Batch | None:
    """The wake-up's first batch (None when its group is empty). A batch of one job that
    leaves room waits the kind's batching delay, then takes what arrived meanwhile."""
    group = wakeup.group
    if wakeup.recover:
        with session_scope(autocommit=True) as session:
            jobs_repo.requeue_lapsed(session, group)
    members = _claim(context, group)
    delay = context.settings.batch_max_delay_ms.get(group.kind, 0.0) / 1000
    if not (delay and len(members) == 1 and len(members[0].inputs) < context.settings.batch_max_inputs[group.kind]):
        return _batch(context, group, members) if members else None
    started = time.perf_counter()
    time.sleep(delay)
    waited = time.perf_counter() - started
    members += _claim(context, group, taken=len(members[0].inputs))
    return _batch(context, group, members, waited)


def next_batch(group: BatchGroup, context: WorkerContext) -> Batch | None:
    members = _claim(context, group)
    return _batch(context, group, members) if members else None


_INTERACTIVE = ("high", "normal")


def yields_to_interactive(batch: Batch, context: WorkerContext) -> bool:
    """After a pass of low-priority jobs only: whether normal or high priority jobs of another
    group wait that this worker serves (it consumes their queues). Then the wake-up hands the
    rest of its group on (a new wake-up, behind theirs) rather than drain it first; every
    wake-up runs one pass before it may yield, so a batch still moves under steady traffic
    (docs/benchmarks/batches.md)."""
    settings = context.settings
    if not settings.batch_yield_to_interactive or any(m.priority in _INTERACTIVE for m in batch.members):
        return False
    priorities = [priority for priority in _consumed_priorities(settings.worker_queues) if priority in _INTERACTIVE]
    if not priorities:
        return False
    with session_scope(autocommit=True) as session:
        return jobs_repo.others_waiting(session, batch.group, priorities)
