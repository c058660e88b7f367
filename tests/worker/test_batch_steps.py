"""A worker that writes a corpus batch's chunks, and leaves the maintenance queue to another
process, queues one driver step for the batch (SEQSERVE_BATCH_STEP_ON_CHUNK_END), so the batch
moves on without beat's next tick; in one process on the real Postgres and Redis with the tiny
model, the test playing the worker."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from seqserve.services.api.main import create_app
from seqserve.services.worker import batch_driver
from seqserve.services.worker.runner import run_wakeup
from seqserve.services.worker.tasks import advance_batches_task
from seqserve.shared import json_codec
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.batch_models import Batch as BatchRow
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import dispose_engines, session_scope
from seqserve.shared.queueing import ADVANCE_BATCHES_TASK, MAINTENANCE_QUEUE, PRIORITY_QUEUES, Wakeup, make_celery
from tests.api.batch_helpers import create, jsonl, step, upload
from tests.conftest import REDIS_URL, built_context, create_key


@pytest.fixture()
def client(db: str, registered_model: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    # Five chunks of 4, all queued by the first step; one chunk per forward pass.
    monkeypatch.setenv("SEQSERVE_BATCH_CHUNK_INPUTS", '{"classify": 4}')
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_INPUTS", '{"classify": 4}')
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_CHUNKS_IN_FLIGHT", "10")
    monkeypatch.setenv("SEQSERVE_WAKEUP_DRAIN_SECONDS", "600")
    monkeypatch.setenv("SEQSERVE_WORKER_QUEUES", "inference.high,inference.normal,inference.low,webhooks")
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _message(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(task name, kwargs) of a message as kombu's Redis transport holds it."""
    envelope = json.loads(raw)
    return envelope["headers"]["task"], json.loads(base64.b64decode(envelope["body"]))[1]


def _started_batch(client: TestClient, broker: redis.Redis, count: int = 20) -> tuple[str, Wakeup]:
    rows = [{"custom_id": f"r{i}", "input": f"a film numbered {i}"} for i in range(count)]
    batch = create(client, upload(client, "s.jsonl", jsonl(rows))["id"], "tiny-sst2")
    assert step(batch["id"]) == "in_progress"
    (raw,) = broker.lrange(PRIORITY_QUEUES["low"], 0, -1)
    broker.delete(PRIORITY_QUEUES["low"], MAINTENANCE_QUEUE)  # the API's first step: run above
    return batch["id"], Wakeup.model_validate(_message(raw)[1])


def test_chunks_that_end_queue_one_step_which_completes_the_batch(client: TestClient) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    batch_id, wakeup = _started_batch(client, broker)
    report = run_wakeup(wakeup, built_context())
    assert (report.batches, report.jobs) == (5, 5)
    # Five chunks ended, one step queued: the ones after the first saw it queued.
    steps = [_message(raw) for raw in broker.lrange(MAINTENANCE_QUEUE, 0, -1)]
    assert steps == [(ADVANCE_BATCHES_TASK, {"batch_id": batch_id})]
    assert advance_batches_task(**steps[0][1]) == 1  # the task body, as the worker runs it
    done = client.get(f"/v1/batches/{batch_id}").json()
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 20


def test_a_started_step_lets_the_next_chunk_queue_another(client: TestClient) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    batch_id = uuid.UUID(_started_batch(client, broker)[0])
    celery = make_celery(get_settings())
    batch_driver.request_steps(celery, broker, [batch_id, batch_id])
    batch_driver.request_steps(celery, broker, [batch_id])
    assert broker.llen(MAINTENANCE_QUEUE) == 1
    batch_driver.step_started(broker, batch_id)
    batch_driver.request_steps(celery, broker, [batch_id])
    assert broker.llen(MAINTENANCE_QUEUE) == 2


@pytest.mark.parametrize("env", [{"SEQSERVE_BATCH_STEP_ON_CHUNK_END": "false"},
                                 {"SEQSERVE_WORKER_QUEUES": "inference.low,maintenance"}], ids=["off", "one-worker"])
def test_with_the_setting_off_or_maintenance_consumed_here_chunks_queue_no_step(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    broker = redis.Redis.from_url(REDIS_URL)
    _, wakeup = _started_batch(client, broker)
    assert run_wakeup(wakeup, built_context()).jobs == 5
    assert broker.llen(MAINTENANCE_QUEUE) == 0


def test_a_bounded_step_decodes_only_the_results_it_appends_and_the_next_chunks(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    batch_id, wakeup = _started_batch(client, broker)
    assert run_wakeup(wakeup, built_context()).jobs == 5  # five chunks ended, none appended yet
    with session_scope() as session:  # the last one open again: the step must not end the batch
        session.execute(update(Job).where(Job.batch_id == uuid.UUID(batch_id), Job.batch_line == 16)
                        .values(status="queued", result=None))
    decoded: list[int] = []

    def counting(data: str | bytes) -> Any:
        value = real_loads(data)
        if isinstance(value, list) and value and isinstance(value[0], dict) and "label" in value[0]:
            decoded.append(len(value))  # a chunk's result: its 4 inputs' labels
        return value

    real_loads = json_codec.loads
    monkeypatch.setattr(json_codec, "loads", counting)
    monkeypatch.setenv("SEQSERVE_BATCH_STEP_INPUTS", "4")  # a step appends one chunk
    reset_settings()
    dispose_engines()  # the next engine reads JSON columns through `counting`
    assert step(batch_id) == "in_progress"
    # The chunk appended and the one after it, where the bound stopped the step; a fetch of 32
    # rows decoded all four ended ones, and the next step the three left again.
    assert decoded == [4, 4]
    with session_scope() as session:
        progress = session.get(BatchRow, uuid.UUID(batch_id)).output_progress
    assert progress["counts"] == {"completed": 4} and progress["position"]["index"] == 4
