"""Hold a request until its job ends (`Prefer: wait=N`).

Workers publish job-finished events on Redis after committing the results; one subscriber per
API process wakes the waiters. An event that carries the job's committed final state answers
the waiter directly; one without (a cancel) triggers a read of the row; without Redis (the
embedded filesystem broker) waiters poll the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from seqserve.shared.config import Settings
from seqserve.shared.notify import FinalState, JobsFinished, channel, parse_finished
from seqserve.shared.queueing import broker_redis_url

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobWaiter:
    def __init__(self, settings: Settings) -> None:
        self._url = broker_redis_url(settings)
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        # Final states carried by events, for jobs someone here waits on.
        self._pushed: dict[str, FinalState] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._url is not None:
            self._listener = asyncio.create_task(self._listen(self._url))

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            # Bounded: redis-py's pub/sub close can hang on a cancelled read (seen in the test
            # suite as a TestClient whose shutdown never returned); the process is ending anyway.
            await asyncio.wait({self._listener}, timeout=2)

    async def _listen(self, url: str) -> None:
        while True:
            try:
                client = aioredis.Redis.from_url(url)
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel(client))
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._wake(parse_finished(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: waiters poll meanwhile
                self._subscribed.clear()
                log.warning("job event subscription lost (%s); retrying", exc)
                await asyncio.sleep(1)

    def _wake(self, event: JobsFinished) -> None:
        for job_id in event.ids:
            events = self._events.get(job_id)
            if not events:
                continue
            state = event.states.get(job_id)
            if state is not None:
                self._pushed[job_id] = state
            for waiting in events:
                waiting.set()

    def register(self, job_id: str) -> asyncio.Event:
        """Listen for `job_id` from now on: register before publishing the job, and an event
        for it can not be missed."""
        event = asyncio.Event()
        self._events[job_id].add(event)
        return event

    def discard(self, job_id: str, event: asyncio.Event) -> None:
        events = self._events.get(job_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._events[job_id]
                self._pushed.pop(job_id, None)

    async def wait(self, job_id: str, timeout: float, fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool],
                   event: asyncio.Event | None = None, apply: Callable[[FinalState], T] | None = None) -> T | None:
        """Fetch the job each time an event names it (and every poll interval) until
        `done(job)` or `timeout` seconds pass; returns the last fetch (None when nothing was
        fetched: an event registered before publishing saw none in time). Without an `event`
        the job is fetched once first."""
        own = event is None
        if event is None:
            event = self.register(job_id)
            event.set()
        deadline = time.monotonic() + timeout
        job: T | None = None
        try:
            while True:
                left = deadline - time.monotonic()
                if not event.is_set():
                    if left <= 0:
                        return job
                    # With events, polling is only a safety net; without, it is the mechanism.
                    poll = 1.0 if self._subscribed.is_set() else 0.05
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(event.wait(), min(left, poll))
                event.clear()
                pushed = self._pushed.pop(job_id, None)
                if pushed is not None and apply is not None:
                    return apply(pushed)  # the event carried the committed final state
                job = await fetch()
                if done(job):
                    return job
        finally:
            if own:
                self.discard(job_id, event)
