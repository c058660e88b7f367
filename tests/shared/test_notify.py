"""Job-finished events through the real Redis pub/sub: what a worker publishes is what a
waiter parses, final states included."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from seqserve.shared.notify import CHANNEL, FinalState, JobsFinished, parse_finished, publish_finished
from tests.conftest import REDIS_URL


def test_a_finished_event_round_trips_through_redis(db: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(CHANNEL)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    ended = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = JobsFinished(ids=["a", "b"], states={"a": FinalState(
        status="succeeded", result=[{"label": "positive"}], attempts=1, started_at=ended, finished_at=ended)})
    publish_finished(client, event)
    publish_finished(client, JobsFinished(ids=[]))  # nothing to say: nothing sent
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["type"] == "message"
    parsed = parse_finished(message["data"])
    assert parsed == event and parsed.states["a"].finished_at == ended and "b" not in parsed.states
    assert pubsub.get_message(timeout=0.5) is None
    pubsub.close()

