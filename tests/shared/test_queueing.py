"""The wake-up on the wire, on the real Redis broker: the direct publish queues exactly what
Celery would, and the coalescing gate lets one wake-up per group and priority through."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis

from seqserve.shared.config import get_settings
from seqserve.shared.queueing import (
    PRIORITY_QUEUES,
    RUN_BATCHES_TASK,
    Wakeup,
    Wakeups,
    broker_redis,
    make_celery,
    publish_wakeup,
    wakeups,
)
from tests.conftest import REDIS_URL

WAKEUP = Wakeup(version_id=1, kind="classify", batch_key="k", priority="high")


@pytest.fixture()
def broker(db: str) -> Iterator[redis.Redis]:
    yield redis.Redis.from_url(REDIS_URL)


def _envelope(raw: bytes) -> dict:
    """A queued message without the values that differ per message."""
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    for key in ("id", "root_id", "origin"):
        message["headers"].pop(key)
    for key in ("correlation_id", "delivery_tag", "reply_to"):
        message["properties"].pop(key)
    return message


def test_a_direct_wakeup_is_what_celery_would_queue(broker: redis.Redis) -> None:
    celery = make_celery(get_settings())
    queue = PRIORITY_QUEUES["high"]
    celery.send_task(RUN_BATCHES_TASK, kwargs=WAKEUP.model_dump(), queue=queue)
    publish_wakeup(celery, WAKEUP, broker_redis(get_settings()))  # the direct path on a Redis broker
    by_kombu, direct = broker.lrange(queue, 0, -1)[::-1]
    assert _envelope(direct) == _envelope(by_kombu)
    assert _envelope(direct)["body"][:2] == [[], WAKEUP.model_dump()]
    assert Wakeup.model_validate(_envelope(direct)["body"][1]) == WAKEUP


def test_one_wakeup_per_group_and_priority_until_it_is_released(broker: redis.Redis) -> None:
    settings = get_settings()
    gate = wakeups(settings, broker_redis(settings))
    assert isinstance(gate, Wakeups)
    celery = make_celery(settings)
    assert gate.publish_if_first(celery, WAKEUP) is True
    assert gate.publish_if_first(celery, WAKEUP) is False  # its jobs ride on the queued one
    low = WAKEUP.model_copy(update={"priority": "low"})
    assert gate.publish_if_first(celery, low) is True  # another queue: a wake-up of its own
    assert broker.llen(PRIORITY_QUEUES["high"]) == 1 and broker.llen(PRIORITY_QUEUES["low"]) == 1
    assert 0 < broker.pttl(Wakeups.key(WAKEUP)) <= settings.trigger_ttl_seconds * 1000
    gate.release(WAKEUP)
    assert gate.publish_if_first(celery, WAKEUP) is True
    assert broker.llen(PRIORITY_QUEUES["high"]) == 2


def test_a_refused_publish_frees_the_group(broker: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    gate = wakeups(settings, broker_redis(settings))
    assert gate is not None

    def refuse(*_: object) -> None:
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(gate.redis, "lpush", refuse)
    with pytest.raises(redis.ConnectionError):
        gate.publish_if_first(make_celery(settings), WAKEUP)
    assert broker.get(Wakeups.key(WAKEUP)) is None  # the next job of the group publishes again


def test_without_coalescing_or_redis_there_is_no_gate(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqserve.shared.config import reset_settings

    assert wakeups(get_settings(), None) is None
    monkeypatch.setenv("SEQSERVE_COALESCE_TRIGGERS", "false")
    reset_settings()
    assert wakeups(get_settings(), broker_redis(get_settings())) is None
