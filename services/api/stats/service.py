"""Job statistics for operators: counts, per-kind latency percentiles and throughput over a
recent window, the last failures, and the broker's queue depths.

Percentiles are computed here, in Python, from a bounded sample of finished jobs, so the
same code serves Postgres and the embedded SQLite.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import JobStatus
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs import stats as stats_repo
from seqserve.shared.jobs.stats_schemas import FailureRead, KindStats, StatsRead
from seqserve.shared.queueing import PRIORITY_QUEUES, queue_depths

log = logging.getLogger(__name__)

# Latency percentiles come from at most this many of the newest finished jobs in the window.
LATENCY_SAMPLE_LIMIT = 5000
FAILURE_LIMIT = 10


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, as
    numpy's default and Postgres' percentile_cont; None for no values."""
    if not sorted_values:
        return None
    rank = q / 100 * (len(sorted_values) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _kind_stats(counts: dict[str, int], latencies: list[float], window_seconds: int) -> KindStats:
    latencies.sort()
    finished = sum(counts.values())
    return KindStats(
        finished=finished,
        succeeded=counts.get(JobStatus.succeeded.value, 0),
        failed=counts.get(JobStatus.failed.value, 0),
        cancelled=counts.get(JobStatus.cancelled.value, 0),
        throughput_per_second=round(finished / window_seconds, 6),
        latency_samples=len(latencies),
        p50_seconds=_rounded(percentile(latencies, 50)),
        p95_seconds=_rounded(percentile(latencies, 95)),
        p99_seconds=_rounded(percentile(latencies, 99)),
    )


def _by_kind(session: Session, since: datetime, window_seconds: int) -> dict[str, KindStats]:
    counts: dict[str, dict[str, int]] = {}
    for (kind, status), count in stats_repo.finished_counts(session, since).items():
        counts.setdefault(kind, {})[status] = count
    latencies: dict[str, list[float]] = {}
    for job in stats_repo.finished_since(session, since, LATENCY_SAMPLE_LIMIT):
        latencies.setdefault(job.kind, []).append(job.latency_seconds)
    return {kind: _kind_stats(counts[kind], latencies.get(kind, []), window_seconds) for kind in sorted(counts)}


def read_queue_depths(settings: Settings) -> tuple[dict[str, int] | None, str | None]:
    """(depths, None), or (None, why) when the broker does not answer: stats never fail on it."""
    try:
        return queue_depths(settings), None
    except Exception as exc:  # redis and kombu raise several connection error types
        log.warning("queue depths unavailable: %s", exc)
        return None, f"{type(exc).__name__}: {exc}"


def _with_queued_jobs(session: Session, depths: dict[str, int] | None) -> dict[str, int] | None:
    """Inference queues count the jobs waiting (the job table is the queue): their broker
    messages are beat's canaries and one wake-up per group, not work waiting."""
    if depths is None:
        return None
    return depths | {queue: jobs_repo.count_queued(session, priority) for priority, queue in PRIORITY_QUEUES.items()}


def _failures(session: Session) -> list[FailureRead]:
    return [
        FailureRead(id=f.id, kind=f.kind, model=f.model_name, model_version=f.model_version,
                    error=f.error, finished_at=f.finished_at)
        for f in stats_repo.recent_failures(session, FAILURE_LIMIT)
    ]


def job_stats(session: Session, settings: Settings, window_seconds: int, now: datetime | None = None) -> StatsRead:
    """Everything `/v1/stats` answers, for jobs that ended in the last `window_seconds`."""
    now = now or utcnow()
    by_status = {status.value: 0 for status in JobStatus} | stats_repo.count_by_status(session)
    by_kind = _by_kind(session, now - timedelta(seconds=window_seconds), window_seconds)
    finished = sum(kind.finished for kind in by_kind.values())
    depths, depth_error = read_queue_depths(settings)
    return StatsRead(
        generated_at=now,
        window_seconds=window_seconds,
        jobs_by_status=by_status,
        finished_in_window=finished,
        throughput_per_second=round(finished / window_seconds, 6),
        by_kind=by_kind,
        recent_failures=_failures(session),
        queue_depth=_with_queued_jobs(session, depths),
        queue_depth_error=depth_error,
    )
