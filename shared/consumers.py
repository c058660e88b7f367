"""Who consumes each queue: every live worker records itself per queue it consumes (a Redis
sorted set per queue, member = worker name, score = when it last vouched for itself), and
the API reads who did so within a window. Only a worker that is not stuck vouches
(`seqserve.services.worker.liveness`), so "a consumer" means one that actually consumes."""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis

_KEY = "seqserve:consumers:{queue}"


def record(redis: Redis, worker: str, queues: Iterable[str], now: float, window: float) -> None:
    """`worker` consumes `queues` as of `now`; entries older than `window` are dropped."""
    with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            key = _KEY.format(queue=queue)
            pipe.zadd(key, {worker: now})
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.expire(key, max(1, int(window * 2)))  # a queue nobody consumes any more leaves no key
        pipe.execute()


def withdraw(redis: Redis, worker: str, queues: Iterable[str]) -> None:
    """`worker` stops consuming (a warm shutdown): it no longer counts at once."""
    with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrem(_KEY.format(queue=queue), worker)
        pipe.execute()


def live(redis: Redis, queues: Iterable[str], now: float, window: float) -> dict[str, dict[str, float]]:
    """Per queue, the workers that vouched within `window` of `now`, with when they last did."""
    names = list(queues)
    with redis.pipeline(transaction=False) as pipe:
        for queue in names:
            pipe.zrangebyscore(_KEY.format(queue=queue), now - window, "+inf", withscores=True)
        answers = pipe.execute()
    return {queue: {member.decode(): float(score) for member, score in rows}
            for queue, rows in zip(names, answers, strict=True)}
