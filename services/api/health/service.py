"""Readiness: the database answers, the broker answers, and every inference queue has a
consumer that actually consumes (a canary task it ran recently), not merely a connection."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session

from seqserve.shared.config import Settings
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import QueueHeartbeat
from seqserve.shared.db.session import after_commit
from seqserve.shared.queueing import CANARY_TASK, INFERENCE_QUEUES, queue_depths

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


def _send_canary(celery: Celery, queue: str, expires: float) -> None:
    try:
        celery.send_task(CANARY_TASK, args=[queue], queue=queue, expires=expires)
    except Exception as exc:  # readiness then reports the queue unconsumed
        log.warning("could not send the canary of %s: %s", queue, exc)


def _send_canaries(session: Session, celery: Celery, settings: Settings, now: datetime) -> None:
    """Ask each queue for proof of a consumer, at most once per canary interval (sent once
    the request's unit of work committed the time it was sent)."""
    interval = timedelta(seconds=settings.canary_interval_seconds)
    for queue in INFERENCE_QUEUES:
        row = session.get(QueueHeartbeat, queue, with_for_update=True) or QueueHeartbeat(queue=queue)
        sent = row.canary_sent_at
        if sent is None or now - sent >= interval:
            after_commit(session).add(partial(_send_canary, celery, queue, settings.readiness_window_seconds))
            row.canary_sent_at = now
            session.add(row)
    session.flush()


def check_consumers(session: Session, celery: Celery, settings: Settings) -> dict[str, Any]:
    now = utcnow()
    _send_canaries(session, celery, settings, now)
    window = timedelta(seconds=settings.readiness_window_seconds)
    queues: dict[str, Any] = {}
    for queue in INFERENCE_QUEUES:
        row = session.get(QueueHeartbeat, queue, populate_existing=True)
        consumed = row.consumed_at if row else None
        queues[queue] = {
            "ok": consumed is not None and now - consumed <= window,
            "last_consumed_at": consumed.isoformat() if consumed else None,
            "worker": row.worker if row else None,
        }
    return {"ok": all(q["ok"] for q in queues.values()), "queues": queues}
