"""Job-finished events, so a request holding `Prefer: wait` wakes the moment its job ends.

Published on Redis pub/sub when the broker is Redis; other brokers (the embedded filesystem
one) have no channel and waiters fall back to polling the job row. Events are only a wake-up
call: the job row stays the source of truth.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Any

import redis

from seqserve.shared.config import Settings

CHANNEL = "seqserve:jobs:finished"
log = logging.getLogger(__name__)
_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_url(settings: Settings) -> str | None:
    url = settings.broker_url
    return url if url.startswith(("redis://", "rediss://")) else None


def redis_client(url: str) -> redis.Redis:
    """One client (one connection pool) per process and URL."""
    key = (os.getpid(), url)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[key]


def publish_finished(settings: Settings, job_ids: Iterable[str], states: dict[str, dict[str, Any]] | None = None) -> None:
    """Best effort: a lost event only means a waiter notices on its next poll.

    The message is the comma-separated ids, then (optionally) a newline and a JSON object of
    each job's final state as just committed ({id: {status, result, error, attempts,
    started_at, finished_at}}), so a waiter can answer without reading the row back."""
    url = redis_url(settings)
    if url is None:
        return
    ids = list(job_ids)
    if not ids:
        return
    message = ",".join(ids)
    if states:
        message += "\n" + json.dumps(states, separators=(",", ":"))
    try:
        redis_client(url).publish(CHANNEL, message)
    except redis.RedisError as exc:
        log.warning("could not publish job-finished events: %s", exc)


def parse_finished(message: bytes) -> tuple[list[str], bytes | None]:
    """(job ids, the undecoded states JSON or None): decode the states only when needed."""
    head, _, states = message.partition(b"\n")
    return head.decode().split(","), states or None
