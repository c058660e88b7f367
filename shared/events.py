"""Job event streams: what `GET /v1/jobs/{id}/events` serves, written by the worker.

One Redis Stream per job (`seqserve:job-events:<id>`), its entries' ids are the SSE event ids
a client resumes from (`Last-Event-ID`). The worker only XADDs, pipelined, with a short
socket timeout: a slow reader never slows it. Drop policy: each stream keeps about its newest
`job_events_maxlen` events (XADD MAXLEN ~) and expires `job_events_ttl_seconds` after its
last write; a reader that falls further behind misses the oldest token/sentence events, never
the final one (the API reads that from the job row). A publish that fails is logged and
dropped: the job row stays the source of truth. Without Redis (the embedded filesystem
broker) there are no streams; the API then follows the job row (status and final only).

Events, each `data` a JSON object with the `job_id`:
- `status`: `{"status"}` when the job starts running and when it ends;
- `token` (generate): `{"step", "tokens"}`, `tokens[i]` the word input i decoded at this step;
- `sentence` (translate): `{"translations": {"<input index>": text}}` as each chunk finishes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis, RedisError
from redis.client import Pipeline

from seqserve.shared.config import Settings

log = logging.getLogger(__name__)

STREAM_PREFIX = "seqserve:job-events:"
STATUS, TOKEN, SENTENCE = "status", "token", "sentence"


def stream_key(job_id: str) -> str:
    return f"{STREAM_PREFIX}{job_id}"


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    event: str
    data: dict[str, Any]

    def fields(self) -> dict[str, str]:
        return {"event": self.event, "data": json.dumps({"job_id": self.job_id, **self.data})}


def parse_entry(fields: dict[bytes, bytes]) -> tuple[str, str]:
    """(event name, JSON data) of a stream entry."""
    return fields[b"event"].decode(), fields[b"data"].decode()


class JobEventLog:
    """The worker's writer of job events (one per process, in its WorkerContext)."""

    def __init__(self, redis: Redis, maxlen: int, ttl_seconds: int) -> None:
        self.redis, self.maxlen, self.ttl_seconds = redis, maxlen, ttl_seconds

    @classmethod
    def build(cls, redis: Redis | None, settings: Settings) -> JobEventLog | None:
        return None if redis is None else cls(redis, settings.job_events_maxlen, settings.job_events_ttl_seconds)

    def publish(self, events: Iterable[JobEvent]) -> None:
        """One round trip for all of them, each stream's TTL renewed; best effort (see the
        module's drop policy)."""
        pipe = self.redis.pipeline(transaction=False)
        streams = self.add(pipe, events)
        if not streams:
            return
        try:
            pipe.execute()
        except RedisError as exc:
            log.warning("job events dropped (%d streams): %s", streams, exc)

    def add(self, pipe: Pipeline, events: Iterable[JobEvent]) -> int:
        """Queue the events' XADDs and TTL renewals on `pipe` (the caller executes it);
        returns the number of streams written."""
        keys = set()
        for event in events:
            key = stream_key(event.job_id)
            pipe.xadd(key, event.fields(), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            keys.add(key)
        for key in keys:
            pipe.expire(key, self.ttl_seconds)
        return len(keys)
