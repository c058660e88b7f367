"""The worker's side of shadow traffic, run in the finish path of a batch that holds a
shadowed job (the claim says which: no query otherwise) or shadow jobs: a sampled real job
that just finished gets its shadow job (a low-priority row of team `_shadow` on the shadow
version, in batch groups of its own); a shadow job that just finished is compared with its
real job, input by input."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

from celery import Celery
from redis import Redis
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Job, JobStatus, ModelVersion
from seqserve.shared.jobs.repository import ClaimedJob
from seqserve.shared.metrics import SHADOW_INPUTS_TOTAL
from seqserve.shared.queueing import Wakeup, publish_wakeup
from seqserve.shared.rollouts.agreement import AGREE_AT, agreements
from seqserve.shared.rollouts.tables import SHADOW_TEAM, ShadowRun, ShadowStatus

SHADOW_PRIORITY = "low"


def shadow_batch_key(batch_key: str) -> str:
    """Shadow jobs batch among themselves: their own key, never a hex digest like real ones."""
    return "s" + batch_key[:31]


def is_shadow(batch_key: str) -> bool:
    return batch_key.startswith("s")


def _start(session: Session, run: ShadowRun, job: Job) -> Wakeup:
    shadow_id = uuid.uuid4()
    number = session.scalar(select(ModelVersion.version).where(ModelVersion.id == run.shadow_version_id))
    now = utcnow()
    session.execute(insert(Job), [{
        "id": shadow_id, "kind": job.kind, "model_name": job.model_name, "model_ref": f"{job.model_ref}#shadow"[:256],
        "model_version_id": run.shadow_version_id, "version_number": number or 0, "inputs": job.inputs,
        "params": job.params, "batch_key": shadow_batch_key(job.batch_key), "priority": SHADOW_PRIORITY,
        "status": JobStatus.queued.value, "attempts": 0, "enqueued_at": now, "team": SHADOW_TEAM, "created_at": now,
    }])
    session.execute(update(ShadowRun).where(ShadowRun.job_id == run.job_id)
                    .values(shadow_job_id=shadow_id, status=ShadowStatus.running.value))
    return Wakeup(version_id=run.shadow_version_id, kind=job.kind, batch_key=shadow_batch_key(job.batch_key),
                  priority=SHADOW_PRIORITY)


def _compare(session: Session, run: ShadowRun, real: Job, shadow: Job) -> None:
    labels = {"model": real.model_name, "alias": run.alias}
    if shadow.status != JobStatus.succeeded.value or real.result is None or shadow.result is None:
        session.execute(update(ShadowRun).where(ShadowRun.job_id == run.job_id)
                        .values(status=ShadowStatus.failed.value, compared_at=utcnow()))
        SHADOW_INPUTS_TOTAL.labels(**labels, agree="error").inc(len(real.inputs))
        return
    scores = agreements(run.kind, real.result, shadow.result)
    agreed = sum(score >= AGREE_AT for score in scores)
    session.execute(update(ShadowRun).where(ShadowRun.job_id == run.job_id).values(
        status=ShadowStatus.compared.value, inputs=len(scores), agreed=agreed, agreement_sum=float(sum(scores)),
        compared_at=utcnow()))
    SHADOW_INPUTS_TOTAL.labels(**labels, agree="true").inc(agreed)
    SHADOW_INPUTS_TOTAL.labels(**labels, agree="false").inc(len(scores) - agreed)


def concerns(batch_key: str, finished: Collection[ClaimedJob]) -> bool:
    """Whether a finished batch has shadow work: a batch of shadow jobs (compare each with its
    real job), or real jobs sampled for a shadow (start their shadow jobs)."""
    return is_shadow(batch_key) or any(job.shadowed for job in finished)


def after_finish(session: Session, finished: Collection[uuid.UUID]) -> list[Wakeup]:
    """Start the shadow jobs of finished sampled jobs, compare finished shadow jobs with
    their real ones; returns the wake-ups to publish once committed."""
    if not finished:
        return []
    runs = session.scalars(select(ShadowRun).where(or_(
        ShadowRun.job_id.in_(finished), ShadowRun.shadow_job_id.in_(finished)))).all()
    wakeups = []
    for run in runs:
        if run.status == ShadowStatus.waiting.value and run.job_id in finished:
            real = session.get(Job, run.job_id)
            if real is not None and real.status == JobStatus.succeeded.value:
                wakeups.append(_start(session, run, real))
            else:
                session.execute(update(ShadowRun).where(ShadowRun.job_id == run.job_id)
                                .values(status=ShadowStatus.skipped.value))
        elif run.status == ShadowStatus.running.value and run.shadow_job_id in finished:
            real, shadow = session.get(Job, run.job_id), session.get(Job, run.shadow_job_id)
            if real is not None and shadow is not None:
                _compare(session, run, real, shadow)
    return wakeups


def publishers(celery: Celery, redis: Redis | None, wakeups: list[Wakeup]) -> list[Callable[[], Any]]:
    return [partial(publish_wakeup, celery, wakeup, redis) for wakeup in wakeups]


