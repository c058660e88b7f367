"""Gauges read from the broker and the database when Prometheus scrapes the API."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db.models import ModelVersion, TrainingRun
from shared.metrics import MODEL_ALIAS_VERSION, MODEL_VERSION_METRIC, MODEL_VERSIONS, QUEUE_DEPTH, TRAINING_RUNS
from shared.queueing import queue_depths
from shared.registry import repository as registry_repo

log = logging.getLogger(__name__)


def refresh_queue_depths(settings: Settings) -> None:
    try:
        for queue, depth in queue_depths(settings).items():
            QUEUE_DEPTH.labels(queue).set(depth)
    except Exception as exc:  # the broker is down: the gauge keeps its last value, readyz says why
        log.warning("queue depth unavailable: %s", exc)


def refresh_registry(session: Session) -> None:
    TRAINING_RUNS.clear()
    rows = session.execute(select(TrainingRun.task, TrainingRun.status, func.count()).group_by(TrainingRun.task, TrainingRun.status))
    for task, status, count in rows:
        TRAINING_RUNS.labels(task, status).set(count)
    MODEL_ALIAS_VERSION.clear()
    MODEL_VERSION_METRIC.clear()
    MODEL_VERSIONS.clear()
    for model in registry_repo.list_models(session):
        MODEL_VERSIONS.labels(model.name).set(len(model.versions))
        for alias in model.aliases:
            MODEL_ALIAS_VERSION.labels(model.name, alias.alias).set(alias.version.version)
            for metric, value in _numeric(alias.version):
                MODEL_VERSION_METRIC.labels(model.name, alias.alias, metric).set(value)


def _numeric(version: ModelVersion) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in version.metrics.items() if isinstance(v, (int, float))]
