"""What the API adds to /metrics at scrape time: queue depths from the broker, and registry,
training-run and queue-consumption state from the database.

The database-derived series come from a collector that builds them afresh on every collect,
so concurrent scrapes never see a half-rebuilt set, and every task x status pair is present
(zero included), so a first failure is an increase, not a new series.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seqserve.shared import consumers
from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.config import get_settings
from seqserve.shared.db.batch_models import BatchStatus
from seqserve.shared.db.models import Job, JobStatus, QueueHeartbeat, RunStatus, Task, TrainingRun
from seqserve.shared.db.session import session_scope
from seqserve.shared.metrics import (
    ALIAS_VERSION,
    CORPUS_BATCHES,
    JOBS_QUEUED,
    QUEUE_CONSUMERS,
    QUEUE_DEPTH,
    QUEUE_LAST_CONSUMED,
    TRAINING_RUN_STATES,
    VERSION_COUNT,
    VERSION_METRIC,
)
from seqserve.shared.queueing import INFERENCE_QUEUES, PRIORITY_QUEUES, broker_redis, queue_depths
from seqserve.shared.registry import repository as registry_repo

log = logging.getLogger(__name__)


def _queue_depths() -> list[GaugeMetricFamily]:
    try:
        depths = queue_depths(get_settings())
    except Exception as exc:  # the broker is down: readyz says why; export nothing stale
        log.warning("queue depth unavailable: %s", exc)
        return []
    family = GaugeMetricFamily(QUEUE_DEPTH, "Messages waiting in a broker queue.", labels=["queue"])
    for queue, depth in depths.items():
        family.add_metric([queue], depth)
    return [family]


def _queue_consumers() -> list[GaugeMetricFamily]:
    settings = get_settings()
    redis = broker_redis(settings)
    if redis is None:  # only the Redis broker keeps the registry
        return []
    try:
        live = consumers.live(redis, INFERENCE_QUEUES, time.time(), settings.consumer_window_seconds)
    except Exception as exc:  # the broker is down: export nothing stale
        log.warning("consumer registry unavailable: %s", exc)
        return []
    finally:
        redis.close()
    family = GaugeMetricFamily(QUEUE_CONSUMERS, "Workers consuming a queue (they vouched recently).",
                               labels=["queue"])
    for queue, workers in live.items():
        family.add_metric([queue], len(workers))
    return [family]


def _jobs_queued(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily(JOBS_QUEUED, "Jobs waiting to run, by the priority queue they wait in.",
                               labels=["queue"])
    counts = dict.fromkeys(PRIORITY_QUEUES, 0)
    query = select(Job.priority, func.count()).where(Job.status == JobStatus.queued.value).group_by(Job.priority)
    for priority, count in session.execute(query):
        counts[priority] = count
    for priority, count in counts.items():
        family.add_metric([PRIORITY_QUEUES[priority]], count)
    return family


def _batches(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily(CORPUS_BATCHES, "Corpus batches, by status.", labels=["status"])
    counts = dict.fromkeys((status.value for status in BatchStatus), 0) | batches_repo.count_by_status(session)
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


def _training_runs(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily(TRAINING_RUN_STATES, "Training runs recorded in the registry, by task and status.",
                               labels=["task", "status"])
    counts = dict.fromkeys(((t.value, s.value) for t in Task for s in RunStatus), 0)
    query = select(TrainingRun.task, TrainingRun.status, func.count()).group_by(TrainingRun.task, TrainingRun.status)
    for task, status, count in session.execute(query):
        counts[(task, status)] = count
    for (task, status), count in counts.items():
        family.add_metric([task, status], count)
    return family


def _registry(session: Session) -> list[GaugeMetricFamily]:
    aliases = GaugeMetricFamily(ALIAS_VERSION, "The version an alias points at.", labels=["model", "alias"])
    versions = GaugeMetricFamily(VERSION_COUNT, "Registered versions per model.", labels=["model"])
    metrics = GaugeMetricFamily(VERSION_METRIC, "Dev metrics of each version; alias is 'none' when unaliased.",
                                labels=["model", "version", "alias", "metric"])
    for model in registry_repo.list_models(session):
        versions.add_metric([model.name], len(model.versions))
        alias_of: dict[int, list[str]] = {}
        for alias in model.aliases:
            aliases.add_metric([model.name, alias.alias], alias.version.version)
            alias_of.setdefault(alias.version_id, []).append(alias.alias)
        for version in model.versions:
            for name, value in version.metrics.items():
                if isinstance(value, (int, float)):
                    for alias_name in alias_of.get(version.id, ["none"]):
                        metrics.add_metric([model.name, str(version.version), alias_name, name], float(value))
    return [aliases, versions, metrics]


def _queues(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily(QUEUE_LAST_CONSUMED, "When a worker last ran a canary from this queue.",
                               labels=["queue"])
    for row in session.scalars(select(QueueHeartbeat)):
        if row.consumed_at is not None:
            consumed = row.consumed_at if row.consumed_at.tzinfo else row.consumed_at.replace(tzinfo=UTC)
            family.add_metric([row.queue], consumed.timestamp())
    return family


class DatabaseCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: lets the registry check for clashes without querying the database.
        for name in (TRAINING_RUN_STATES, ALIAS_VERSION, VERSION_COUNT, VERSION_METRIC, QUEUE_LAST_CONSUMED,
                     QUEUE_DEPTH, JOBS_QUEUED, QUEUE_CONSUMERS, CORPUS_BATCHES):
            yield GaugeMetricFamily(name, name)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with session_scope() as session:
                families = [_training_runs(session), *_registry(session), _queues(session), _jobs_queued(session),
                            _batches(session)]
        except Exception as exc:  # the database is down: readyz says so; export nothing stale
            log.warning("registry metrics unavailable: %s", exc)
            families = []
        yield from families
        yield from _queue_depths()
        yield from _queue_consumers()


_installed: list[DatabaseCollector] = []


def install_collector() -> None:
    """Register the collector once per process (create_app may run more than once)."""
    if not _installed:
        from prometheus_client import REGISTRY

        _installed.append(DatabaseCollector())
        REGISTRY.register(_installed[0])


def exposition() -> bytes:
    """The /metrics body. With several API processes (PROMETHEUS_MULTIPROC_DIR set), every
    process's request metrics are merged from their files; the database-derived series are
    built by whichever process answers."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
