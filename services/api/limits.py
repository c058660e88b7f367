"""Per-key rate limits and quotas, enforced before anything is stored: `admit()` is what a
route that creates jobs calls (POST /v1/jobs; a batch route calls it the same way).

Counters are fixed windows in Redis, shared by every API process: a window starts at a key's
first submission and its counter expires with it (Redis' clock, so API processes never
disagree about windows). One Lua script checks and charges both limits in one atomic round
trip: a submission refused for its inputs charges no submission, and two processes can not
both take the last slot. (The `limits` library charges one limit per call: test-then-hit of
two limits is four round trips and races between processes.) With the filesystem broker
there is no Redis: the same windows are kept in each API process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request
from redis.exceptions import RedisError

from seqserve.services.api.errors import RETRY_AFTER_SECONDS, ApiError, ErrorBody
from seqserve.shared.auth.limits import INPUTS_WINDOW_SECONDS, EffectiveLimits, effective, priority_allowed
from seqserve.shared.auth.service import Principal
from seqserve.shared.config import Settings
from seqserve.shared.metrics import JOBS_REJECTED_TOTAL
from seqserve.shared.queueing import broker_redis_url

# KEYS[i]: limit i's counter. ARGV: per limit its quota, window (ms) and cost. Returns
# {refused, used_1, pttl_1, used_2, pttl_2, ...}: refused is 0 when every limit admitted the
# cost (then charged to all), else the first limit that did not (nothing charged).
_TAKE = """
local used, refused = {}, 0
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if refused == 0 and used[i] + tonumber(ARGV[3 * i]) > tonumber(ARGV[3 * i - 2]) then refused = i end
end
local answer = {refused}
for i = 1, #KEYS do
  if refused == 0 then
    redis.call('SET', KEYS[i], 0, 'PX', ARGV[3 * i - 1], 'NX')
    used[i] = redis.call('INCRBY', KEYS[i], ARGV[3 * i])
  end
  local pttl = redis.call('PTTL', KEYS[i])
  if pttl < 0 then pttl = tonumber(ARGV[3 * i - 1]) end
  table.insert(answer, used[i])
  table.insert(answer, pttl)
end
return answer
"""

LIMIT_HEADERS = {
    "RateLimit-Policy": {"description": 'The key\'s limits, e.g. `"submissions";q=100;w=60, "inputs";q=5000;w=60`.',
                         "schema": {"type": "string"}},
    "RateLimit": {"description": 'What is left of each now, e.g. `"submissions";r=42;t=30` (r: left, t: seconds '
                  "until the window resets).", "schema": {"type": "string"}},
}
# The OpenAPI `responses=` of a route that calls `admit` (the headers come only for keys with
# limits); FastAPI merges the 202 entry into the route's own status; add LIMIT_HEADERS to others.
LIMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {"headers": LIMIT_HEADERS},
    403: {"model": ErrorBody, "description": "The key lacks the scope (`insufficient_scope`), or the priority is "
          "above the key's max priority (`priority_not_allowed`, field `priority`)"},
    429: {"model": ErrorBody, "description": "A rate limit of the key is reached (`rate_limited`; `field` names it: "
          "`submissions` or `inputs`); nothing was stored",
          "headers": {"Retry-After": {"description": "Seconds until the limit admits it.",
                                      "schema": {"type": "integer"}}, **LIMIT_HEADERS}},
}


@dataclass(frozen=True)
class Limit:
    """One enforced limit of one key: `cost` of `quota` per `window` seconds."""

    name: str  # the policy's name in the headers: "submissions" or "inputs"
    counter: str
    quota: int
    window: int
    cost: int


@dataclass(frozen=True)
class Taken:
    """The answer of a take: `refused` is the limit that refused (then nothing was charged);
    `used[i]` is limit i's count now, `reset[i]` the seconds left in its window."""

    refused: Limit | None
    used: list[int]
    reset: list[float]


class RedisWindows:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_TAKE)

    async def take(self, limits: list[Limit]) -> Taken:
        args = [value for limit in limits for value in (limit.quota, limit.window * 1000, limit.cost)]
        answer = [int(value) for value in await self._script(keys=[limit.counter for limit in limits], args=args)]
        refused = limits[answer[0] - 1] if answer[0] else None
        return Taken(refused, answer[1::2], [pttl / 1000 for pttl in answer[2::2]])

    async def close(self) -> None:
        await self._redis.aclose()


class LocalWindows:
    """The same windows in this process, for the filesystem broker (no Redis): exact with one
    API process (the embedded default), per process with several."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}  # counter -> (window end, used)

    async def take(self, limits: list[Limit]) -> Taken:
        # No await in here: on the event loop, the check and the charge are one step.
        now = time.monotonic()
        current = [self._current(limit, now) for limit in limits]
        refused = next((limit for limit, (_, used) in zip(limits, current, strict=True)
                        if used + limit.cost > limit.quota), None)
        if refused is None:
            current = [(end, used + limit.cost) for limit, (end, used) in zip(limits, current, strict=True)]
            self._windows.update((limit.counter, state) for limit, state in zip(limits, current, strict=True))
        return Taken(refused, [used for _, used in current], [end - now for end, _ in current])

    def _current(self, limit: Limit, now: float) -> tuple[float, int]:
        end, used = self._windows.get(limit.counter, (0.0, 0))
        return (end, used) if end > now else (now + limit.window, 0)

    async def close(self) -> None:
        self._windows.clear()


class RateLimiter:
    """The counters of this API process (`app.state.limiter`), on Redis when there is one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        url = settings.rate_limit_redis_url or broker_redis_url(settings)
        self._windows: RedisWindows | LocalWindows = RedisWindows(url) if url else LocalWindows()

    def limits_of(self, principal: Principal) -> EffectiveLimits:
        settings = self._settings
        return effective(principal.limits, settings.rate_limit_default, settings.rate_limit_inputs_per_minute,
                         settings.rate_limit_max_priority)

    def _enforced(self, principal: Principal, limits: EffectiveLimits, inputs: int) -> list[Limit]:
        counter = f"{self._settings.rate_limit_prefix}:{principal.key_name}"
        enforced = []
        if limits.submissions is not None:
            rate = limits.submissions
            enforced.append(Limit("submissions", f"{counter}:submissions", rate.quota, rate.window, 1))
        if limits.inputs_per_minute is not None:
            enforced.append(Limit("inputs", f"{counter}:inputs", limits.inputs_per_minute, INPUTS_WINDOW_SECONDS,
                                  inputs))
        return enforced

    async def admit(self, principal: Principal, inputs: int, priority: str) -> dict[str, str]:
        """Charge one submission of `inputs` inputs at `priority` to the key, or raise the
        error that refuses it (403 priority, 422 inputs over a whole quota, 429, 503). Returns
        the RateLimit headers for the answer (none for a key without limits)."""
        limits = self.limits_of(principal)
        if not priority_allowed(priority, limits.max_priority):
            message = f"this key may submit at priority '{limits.max_priority}' at most"
            raise ApiError(403, "priority_not_allowed", message, "priority")
        enforced = self._enforced(principal, limits, inputs)
        if not enforced:
            return {}
        if limits.inputs_per_minute is not None and inputs > limits.inputs_per_minute:
            message = f"{inputs} inputs; this key may submit {limits.inputs_per_minute} per minute in all"
            raise ApiError(422, "inputs_over_quota", message, "inputs")
        try:
            taken = await self._windows.take(enforced)
        except RedisError as exc:  # the same answer as a broker outage: the job is not stored
            raise ApiError(503, "broker_unavailable", f"the rate limits' Redis is unreachable: {exc}", None,
                           {"Retry-After": RETRY_AFTER_SECONDS}) from exc
        headers = rate_limit_headers(enforced, taken)
        if taken.refused is not None:
            limit = taken.refused
            retry = _seconds(taken.reset[enforced.index(limit)])
            message = f"rate limit '{limit.name}' ({limit.quota} per {limit.window} s) reached; retry in {retry} s"
            raise ApiError(429, "rate_limited", message, limit.name, {**headers, "Retry-After": str(retry)})
        return headers

    async def close(self) -> None:
        await self._windows.close()


def rate_limit_headers(limits: list[Limit], taken: Taken) -> dict[str, str]:
    """draft-ietf-httpapi-ratelimit-headers (-10): the policies, and what is left of each now."""
    policy = ", ".join(f'"{limit.name}";q={limit.quota};w={limit.window}' for limit in limits)
    now = [f'"{limit.name}";r={max(limit.quota - used, 0)};t={_seconds(reset)}'
           for limit, used, reset in zip(limits, taken.used, taken.reset, strict=True)]
    return {"RateLimit-Policy": policy, "RateLimit": ", ".join(now)}


def _seconds(reset: float) -> int:
    return max(math.ceil(reset), 1)


async def admit(request: Request, principal: Principal, inputs: int, priority: str) -> dict[str, str]:
    """What a route calls before it stores a submission: see RateLimiter.admit."""
    limiter: RateLimiter = request.app.state.limiter
    try:
        return await limiter.admit(principal, inputs, priority)
    except ApiError as exc:
        JOBS_REJECTED_TOTAL.labels(exc.code).inc()  # the dashboards' "rejected submissions by reason"
        raise
