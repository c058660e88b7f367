"""Job-finished events through the real Redis pub/sub: what a worker publishes is what a
waiter parses, final states included."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from seqserve.shared.notify import FinalState, JobsFinished, channel, parse_finished, publish_finished
from tests.conftest import REDIS_URL


def test_a_finished_event_round_trips_through_redis(db: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(channel(client))
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



def test_another_databases_events_do_not_reach_this_one(db: str) -> None:
    # Pub/sub is server-wide: a second stack (or test run) on its own database of this Redis
    # server used to wake, and feed final states to, this one's waiters.
    client = redis.Redis.from_url(REDIS_URL)
    ours = client.connection_pool.connection_kwargs.get("db", 0)
    other = redis.Redis(host="127.0.0.1", port=6379, db=(ours + 1) % 16)
    pubsub = client.pubsub()
    pubsub.subscribe(channel(client))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert channel(other) != channel(client)
    publish_finished(other, JobsFinished(ids=["theirs"]))
    publish_finished(client, JobsFinished(ids=["ours"]))
    message = pubsub.get_message(timeout=5)
    assert message is not None and parse_finished(message["data"]).ids == ["ours"]
    assert pubsub.get_message(timeout=0.5) is None
    pubsub.close()
