"""What both clients' waits share: deadlines, poll backoff, stream resumption bookkeeping."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from httpx_sse import ServerSentEvent

from seqserve_client.errors import JobFailed
from seqserve_client.types import Event, Job

# A server that does not hold the request (an old one, a proxy dropping Prefer) is polled
# this often: from 0.2 s, doubling, to 2 s.
POLL_START, POLL_MAX = 0.2, 2.0
ENDING_EVENTS = frozenset({"final", "error"})


@dataclass
class Deadline:
    timeout: float | None
    started: float = field(default_factory=time.monotonic)
    poll: float = POLL_START

    def left(self) -> float | None:
        return None if self.timeout is None else self.timeout - (time.monotonic() - self.started)

    @property
    def passed(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def hold(self) -> float:
        """Seconds to ask the server to hold the next request (`Prefer: wait`)."""
        left = self.left()
        return 60.0 if left is None else max(min(left, 60.0), 0.0)

    def next_poll(self, response_held: bool) -> float:
        """Seconds to sleep before the next look: none after a held request."""
        if response_held:
            return 0.0
        delay, self.poll = self.poll, min(self.poll * 2, POLL_MAX)
        left = self.left()
        return delay if left is None else max(min(delay, left), 0.0)


@dataclass
class BatchLooks:
    """A batch wait's looks: the first at once, each next one held by the server up to
    `interval` seconds (`Prefer: wait`); a look the server did not hold (an old server, a proxy
    dropping Prefer) is followed by a sleep of `interval` instead."""

    interval: float
    hold: float | None = None  # the next look's; None: not held (the first)
    _held: bool = True

    def looked(self, seconds: float) -> None:
        """The look just made took `seconds`."""
        self._held = self.hold is None or seconds > 0.5 * self.hold

    def next(self, deadline: Deadline) -> float:
        """Seconds to sleep before the next look (none after a held one); sets its hold."""
        left = deadline.left()
        span = self.interval if left is None else max(min(self.interval, left), 0.0)
        sleep, self.hold = (0.0 if self._held else span), span
        return sleep


def finished(job: Job, raise_on_failure: bool) -> Job:
    if raise_on_failure and job.status != "succeeded":
        raise JobFailed(job)
    return job


@dataclass
class StreamCursor:
    """Where a job's stream is, so a dropped connection resumes with `Last-Event-ID`."""

    job_id: str | None = None
    last_event_id: str | None = None
    ended: bool = False

    def see(self, sse: ServerSentEvent) -> Event:
        event = Event.from_sse(sse.event, sse.data, sse.id)
        if event.id:
            self.last_event_id = event.id
        if self.job_id is None and isinstance(event.data, dict) and event.data.get("job_id"):
            self.job_id = str(event.data["job_id"])
        # A server ends a long stream with a stream_timeout error: that one is resumed, not the end.
        timed_out = event.event == "error" and _code(event.data) == "stream_timeout"
        self.ended = event.event in ENDING_EVENTS and not timed_out
        return event

    def can_resume(self, exc: Exception | None, attempts: int, retries: int) -> bool:
        """After a dropped connection (`exc`) or a stream the server closed early (None)."""
        resumable = exc is None or isinstance(exc, httpx.TransportError)
        return resumable and self.job_id is not None and attempts < retries


def _code(data: object) -> object:
    return data.get("error", {}).get("code") if isinstance(data, dict) else None
