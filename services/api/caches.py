"""What an API process keeps between requests, owned by the app (`app.state.caches`): built
by `create_app`, so every app (and every test's) starts empty."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from seqserve.shared.auth.service import Principal
from seqserve.shared.rollouts.routing import RolloutConfig

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A value per key, computed again once it is older than the caller's `ttl` seconds."""

    def __init__(self) -> None:
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, ttl: float, compute: Callable[[], V]) -> V:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        value = compute()
        self._entries[key] = (now, value)
        return value

    def cached(self, key: K, ttl: float) -> V | None:
        """The value if it is younger than `ttl`, without computing one (for async callers,
        whose compute must leave the event loop)."""
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        return None

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True)
class Resolved:
    """What a model reference resolved to."""

    version_id: int
    number: int
    task: str


@dataclass
class ApiCaches:
    # ref -> version: resolving costs three queries per submission; an alias move reaches
    # new jobs within `alias_cache_seconds`, and at once when it went through this process.
    resolutions: TtlCache[str, Resolved] = field(default_factory=TtlCache)
    # priority -> queued jobs, for backpressure: counted at most every 0.5 s.
    queue_depths: TtlCache[str, int] = field(default_factory=TtlCache)
    # secret digest -> principal, for auth_cache_seconds: a key costs a query once per
    # window, not per request; a revoke through this process clears it at once.
    principals: TtlCache[str, Principal] = field(default_factory=TtlCache)
    # "name@alias" -> its shadow and canary split (None: plain), for alias_cache_seconds.
    rollouts: TtlCache[str, RolloutConfig | None] = field(default_factory=TtlCache)
