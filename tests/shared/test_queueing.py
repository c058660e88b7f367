"""The wake-up on the wire, on the real Redis broker: the direct publish queues exactly what
Celery would, on the queue of its priority."""

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
    broker_redis,
    make_celery,
    publish_wakeup,
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


def test_each_priority_wakes_on_its_own_queue(broker: redis.Redis) -> None:
    settings = get_settings()
    celery, client = make_celery(settings), broker_redis(settings)
    for priority in ("low", "high", "high"):
        publish_wakeup(celery, WAKEUP.model_copy(update={"priority": priority}), client)
    assert {name: broker.llen(queue) for name, queue in PRIORITY_QUEUES.items()} == {"high": 2, "normal": 0, "low": 1}
