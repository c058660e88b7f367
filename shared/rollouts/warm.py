"""Warm reports in Redis: each inference process that loaded a version and ran its warm-up
inputs says so (`seqserve:warm:{version_id}`, worker -> when), and keeps a line of what it
holds warm (`seqserve:warm-workers`, for readiness). A promotion waits until as many
processes report warm as live workers consume the inference queues."""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis

from seqserve.shared import consumers
from seqserve.shared.queueing import INFERENCE_QUEUES

_VERSION_KEY = "seqserve:warm:{version_id}"
_WORKERS_KEY = "seqserve:warm-workers"
_TTL_SECONDS = 86400


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def report(redis: Redis, worker: str, version_id: int, holding: list[int]) -> None:
    now = time.time()
    with redis.pipeline(transaction=False) as pipe:
        pipe.hset(_VERSION_KEY.format(version_id=version_id), worker, now)
        pipe.expire(_VERSION_KEY.format(version_id=version_id), _TTL_SECONDS)
        pipe.hset(_WORKERS_KEY, worker, json.dumps({"warm_versions": sorted(holding), "at": now}))
        pipe.expire(_WORKERS_KEY, _TTL_SECONDS)
        pipe.execute()


def warm_on(redis: Redis, version_id: int) -> list[str]:
    """The processes that reported `version_id` warm."""
    return sorted(_text(name) for name in redis.hkeys(_VERSION_KEY.format(version_id=version_id)))


def workers(redis: Redis) -> dict[str, dict[str, Any]]:
    """Per inference process, the versions it holds warm and when it last said so."""
    return {_text(name): json.loads(value) for name, value in redis.hgetall(_WORKERS_KEY).items()}


def expected(redis: Redis, window: float) -> int:
    """Live workers consuming any inference queue (each must hold the version warm)."""
    live = consumers.live(redis, INFERENCE_QUEUES, time.time(), window)
    return len({worker for names in live.values() for worker in names})


def wait_until_warm(redis: Redis, version_id: int, timeout: float, window: float) -> tuple[int, int]:
    """Poll until the version is warm on as many processes as there are live workers, or
    `timeout` passes; returns (warm, expected)."""
    deadline = time.monotonic() + timeout
    while True:
        warm, wanted = len(warm_on(redis, version_id)), expected(redis, window)
        if warm >= wanted or time.monotonic() >= deadline:
            return warm, wanted
        time.sleep(0.1)
