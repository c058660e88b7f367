"""Readiness means this process can accept and store jobs: the database and the broker
answer. Whether anyone consumes them is another question, answered by `queue_report`
(GET /v1/queues, the seqserve_queue_consumers metric and its alert): a missing worker or
beat must not take the API out of service, where it could still queue jobs durably."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from seqserve.shared import consumers
from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import QueueHeartbeat
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.queueing import INFERENCE_QUEUES, PRIORITY_QUEUES, broker_redis, queue_depths

log = logging.getLogger(__name__)


def check_database(session: Session) -> dict[str, Any]:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


def check_broker(settings: Settings) -> dict[str, Any]:
    try:
        return {"ok": True, "depths": queue_depths(settings)}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def queue_report(session: Session, settings: Settings) -> dict[str, Any]:
    """Per inference queue: messages waiting, the workers that consume it (each live worker
    vouches for itself in the registry), and the last canary a worker ran (sent by beat)."""
    now = utcnow()
    consumed = _consumers(settings, now.timestamp())
    depths = _depths(settings)
    window = timedelta(seconds=settings.readiness_window_seconds)
    queues: dict[str, Any] = {}
    priority_of = {queue: priority for priority, queue in PRIORITY_QUEUES.items()}
    for queue in INFERENCE_QUEUES:
        row = session.get(QueueHeartbeat, queue)
        canary = row.consumed_at if row else None
        workers = consumed.get(queue, {}) if consumed is not None else None
        queues[queue] = {
            "consumers": None if workers is None else [
                {"worker": name, "seen_at": datetime.fromtimestamp(at, UTC).isoformat()}
                for name, at in sorted(workers.items())],
            "depth": depths.get(queue),
            "jobs_queued": jobs_repo.count_queued(session, priority_of[queue]),
            "canary": {"ok": canary is not None and now - canary <= window,
                       "last_consumed_at": canary.isoformat() if canary else None,
                       "worker": row.worker if row else None},
        }
        queues[queue]["ok"] = bool(workers) if workers is not None else queues[queue]["canary"]["ok"]
    return {"ok": all(q["ok"] for q in queues.values()), "queues": queues}


def _consumers(settings: Settings, now: float) -> dict[str, dict[str, float]] | None:
    """The registry's live consumers; None when the broker keeps none (not Redis) or is away."""
    redis = broker_redis(settings)
    if redis is None:
        return None
    try:
        return consumers.live(redis, INFERENCE_QUEUES, now, settings.consumer_window_seconds)
    except Exception as exc:
        log.warning("consumer registry unavailable: %s", exc)
        return None
    finally:
        redis.close()


def _depths(settings: Settings) -> dict[str, int]:
    try:
        return queue_depths(settings, INFERENCE_QUEUES)
    except Exception:  # the broker is away: /readyz says so
        return {}
