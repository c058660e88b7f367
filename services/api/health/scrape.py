"""What the API adds to /metrics at scrape time: queue depths from the broker, and registry,
training-run and queue-consumption state from the database.

The database-derived series come from a collector that builds them afresh on every collect,
so concurrent scrapes never see a half-rebuilt set, and every task x status pair is present
(zero included), so a first failure is an increase, not a new series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timezone

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db.models import QueueHeartbeat, RunStatus, Task, TrainingRun
from shared.db.session import session_scope
from shared.metrics import (
    ALIAS_VERSION,
    QUEUE_DEPTH,
    QUEUE_LAST_CONSUMED,
    TRAINING_RUN_STATES,
    VERSION_COUNT,
    VERSION_METRIC,
)
from shared.queueing import queue_depths
from shared.registry import repository as registry_repo

log = logging.getLogger(__name__)


def refresh_queue_depths(settings: Settings) -> None:
    try:
        for queue, depth in queue_depths(settings).items():
            QUEUE_DEPTH.labels(queue).set(depth)
    except Exception as exc:  # the broker is down: the gauge keeps its last value, readyz says why
        log.warning("queue depth unavailable: %s", exc)


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
        alias_of = {}
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
            consumed = row.consumed_at if row.consumed_at.tzinfo else row.consumed_at.replace(tzinfo=timezone.utc)
            family.add_metric([row.queue], consumed.timestamp())
    return family


class DatabaseCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: lets the registry check for clashes without querying the database.
        for name in (TRAINING_RUN_STATES, ALIAS_VERSION, VERSION_COUNT, VERSION_METRIC, QUEUE_LAST_CONSUMED):
            yield GaugeMetricFamily(name, name)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with session_scope() as session:
                families = [_training_runs(session), *_registry(session), _queues(session)]
        except Exception as exc:  # the database is down: readyz says so; export nothing stale
            log.warning("registry metrics unavailable: %s", exc)
            return
        yield from families


_installed: list[DatabaseCollector] = []


def install_collector() -> None:
    """Register the collector once per process (create_app may run more than once)."""
    if not _installed:
        from prometheus_client import REGISTRY

        _installed.append(DatabaseCollector())
        REGISTRY.register(_installed[0])
