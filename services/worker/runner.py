"""One job's life in the worker: claim -> load -> infer -> write the result.

Each state change is its own short transaction, so the row always tells the truth: a job is
`running` while it computes, and ends `succeeded` or `failed`, never stuck.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from services.worker.model_cache import ModelCache, VersionInfo
from shared.db.base import utcnow
from shared.db.models import JobStatus
from shared.db.session import session_scope
from shared.jobs import repository as jobs_repo
from shared.metrics import JOB_END_TO_END_SECONDS, JOB_STAGE_SECONDS, JOBS_FINISHED_TOTAL

log = logging.getLogger(__name__)
_cache = ModelCache()


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    inputs: list[str]
    params: dict[str, Any]
    created_at: Any
    version: VersionInfo


def claim(job_id: uuid.UUID) -> ClaimedJob | None:
    """Move the job to running and snapshot what inference needs; None if not queued."""
    with session_scope() as session:
        if not jobs_repo.claim(session, job_id):
            return None
        job = jobs_repo.get(session, job_id)
        assert job is not None
        version = job.model_version
        info = VersionInfo(version.id, job.model_name, version.checkpoint_uri, version.sha256)
        return ClaimedJob(job.id, job.kind, list(job.inputs), dict(job.params), job.created_at, info)


def _infer(job: ClaimedJob) -> list[Any]:
    handler = _cache.get(job.version, job.kind)
    started = time.perf_counter()
    outputs = handler.run(job.inputs, job.params)
    JOB_STAGE_SECONDS.labels(job.kind, job.version.model_name, "infer").observe(time.perf_counter() - started)
    if len(outputs) != len(job.inputs):
        raise RuntimeError(f"handler returned {len(outputs)} results for {len(job.inputs)} inputs")
    return outputs


def _finish(job: ClaimedJob, status: JobStatus, result: list[Any] | None, error: str | None) -> None:
    with session_scope() as session:
        if not jobs_repo.finish(session, job.id, status, result=result, error=error):
            log.info("job %s left running before its result was written; result dropped", job.id)
            return
    JOBS_FINISHED_TOTAL.labels(job.kind, job.version.model_name, status.value).inc()
    created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=utcnow().tzinfo)
    JOB_END_TO_END_SECONDS.labels(job.kind, job.version.model_name).observe(
        (utcnow() - created).total_seconds()
    )


def run_job(job_id: str) -> str:
    """Run one job to a final status; returns the status (for logs)."""
    job = claim(uuid.UUID(job_id))
    if job is None:
        log.info("job %s is not queued; skipping", job_id)
        return "skipped"
    try:
        outputs = _infer(job)
    except Exception as exc:  # any failure of this job's own inputs/model ends it failed
        log.exception("job %s failed", job_id)
        _finish(job, JobStatus.failed, None, f"{type(exc).__name__}: {exc}")
        return JobStatus.failed.value
    _finish(job, JobStatus.succeeded, outputs, None)
    return JobStatus.succeeded.value
