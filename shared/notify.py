"""Job-finished events, so a request holding `Prefer: wait` wakes the moment its job ends.
A batch's end is published the same way, its id in `ids` (ids are UUIDs: no job shares one).

Published on Redis pub/sub when the broker is Redis; other brokers (the embedded filesystem
one) have no channel and waiters fall back to polling the job row. Events are only a wake-up
call: the job row stays the source of truth.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from redis import Redis, RedisError
from redis.client import Pipeline

CHANNEL = "seqserve:jobs:finished"
log = logging.getLogger(__name__)


def channel(client: Any) -> str:
    """The channel of the client's Redis database (a sync or asyncio client, or a pipeline).
    Pub/sub is server-wide, not per database: two stacks (or test runs) on one Redis server,
    each on its own database number, read each other's events on one shared channel."""
    return f"{CHANNEL}:{client.connection_pool.connection_kwargs.get('db', 0)}"


class FinalState(BaseModel):
    """A job's final state exactly as its worker just committed it."""

    status: str
    result: list[Any] | None = None
    error: str | None = None
    attempts: int
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobsFinished(BaseModel):
    """The event on the channel: these jobs ended; `states` (when known) lets a waiter answer
    without reading the row back (a cancel sends none)."""

    ids: list[str]
    states: dict[str, FinalState] = {}


def publish_finished(redis: Redis | None, event: JobsFinished) -> None:
    """Best effort: a lost event only means a waiter notices on its next poll."""
    if redis is None or not event.ids:
        return
    try:
        redis.publish(channel(redis), event.model_dump_json())
    except RedisError as exc:
        log.warning("could not publish job-finished events: %s", exc)


def queue_finished(pipe: Pipeline, event: JobsFinished) -> None:
    """Add the event's publish to `pipe`: it travels with the caller's other commands (the
    worker's job events), one round trip for both."""
    if event.ids:
        pipe.publish(channel(pipe), event.model_dump_json())


def parse_finished(message: bytes) -> JobsFinished:
    return JobsFinished.model_validate_json(message)
