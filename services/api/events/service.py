"""A job's server-sent events: the worker's Redis Stream for the job (seqserve.shared.events)
followed live, then a `final` event with the job as its row says.

Any API process serves any job's stream: everything comes from Redis and the job row. The
row stays the source of truth: a stream that goes quiet is checked against the row once a
second, so a cancel, a lost event or the embedded broker (no Redis: status and final only)
still end the stream."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis import RedisError
from sse_starlette import ServerSentEvent

from seqserve.shared.config import Settings
from seqserve.shared.db.models import FINAL_JOB_STATUSES, JobStatus
from seqserve.shared.events import STATUS, parse_entry, stream_key
from seqserve.shared.jobs.schemas import JobRead
from seqserve.shared.queueing import broker_redis_url

QUIET_SECONDS = 1.0  # a stream with no event for this long looks at the job row
READ_COUNT = 500  # entries per XREAD

Entry = tuple[str, str, str]  # (stream id, event, JSON data)
ReadJob = Callable[[], Awaitable[JobRead | None]]


class JobEventReader:
    """Reads job event streams (one per API process, `app.state.job_events`); without Redis
    it only waits, and streams follow the job row."""

    def __init__(self, settings: Settings) -> None:
        url = broker_redis_url(settings)
        # No socket timeout shorter than a blocking XREAD; connections open on first use.
        self.redis = None if url is None else aioredis.Redis.from_url(url, socket_connect_timeout=2)

    async def read(self, job_id: uuid.UUID, after: str, block_seconds: float) -> list[Entry]:
        """Entries after `after`, waiting up to `block_seconds` for the first (0: none)."""
        if self.redis is None:
            if block_seconds:
                await asyncio.sleep(block_seconds / 2)
            return []
        block = int(block_seconds * 1000) or None
        answer: Any = await self.redis.xread({stream_key(str(job_id)): after}, count=READ_COUNT, block=block)
        # [[stream, [(id, {field: value}), ...]]] (bytes: the client does not decode)
        return [(entry_id.decode(), *parse_entry(fields)) for _, entries in answer for entry_id, fields in entries]

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def _ended(job: JobRead) -> bool:
    return JobStatus(job.status) in FINAL_JOB_STATUSES


def _status(job: JobRead) -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"job_id": str(job.id), "status": job.status}), event=STATUS)


def _error(code: str, message: str) -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"error": {"code": code, "message": message}}), event="error")


def _ends(name: str, data: str) -> bool:
    return name == STATUS and json.loads(data).get("status") in {s.value for s in FINAL_JOB_STATUSES}


async def job_events(job: JobRead, read_job: ReadJob, reader: JobEventReader, last_event_id: str | None,
                     settings: Settings) -> AsyncIterator[ServerSentEvent]:
    """The job's status now, its stream's events after `last_event_id` (all when none), then `final`."""
    try:
        async for event in _follow(job, read_job, reader, last_event_id or "0-0", settings.job_stream_max_seconds):
            yield event
    except (RedisError, OSError) as exc:
        yield _error("events_unavailable", f"the event store is unreachable: {exc}")
    except Exception as exc:  # the stream has started: an error can only be an event now
        yield _error("stream_failed", f"{type(exc).__name__}: {exc}")


async def _follow(job: JobRead, read_job: ReadJob, reader: JobEventReader, cursor: str, max_seconds: float
                  ) -> AsyncIterator[ServerSentEvent]:
    yield _status(job)
    deadline, saw_end, done = time.monotonic() + max_seconds, False, _ended(job)
    checked = time.monotonic()
    while True:
        entries = await reader.read(job.id, cursor, 0 if done else QUIET_SECONDS)
        for cursor, name, data in entries:
            saw_end = saw_end or _ends(name, data)
            yield ServerSentEvent(data, event=name, id=cursor)
        if done and not entries:
            break  # ended and drained
        # The row, once a second even while events flow: a cancel publishes no event.
        if not done and (saw_end or time.monotonic() - checked >= QUIET_SECONDS):
            checked = time.monotonic()
            latest = await read_job()
            if latest is None:
                yield _error("job_not_found", f"job {job.id} no longer exists")
                return
            if reader.redis is None and latest.status != job.status:
                yield _status(latest)
            job, done = latest, _ended(latest)
        if not done and time.monotonic() > deadline:
            yield _error("stream_timeout", f"stream open {max_seconds:g}s; reconnect with Last-Event-ID: {cursor}")
            return
    yield ServerSentEvent(job.model_dump_json(), event="final")
