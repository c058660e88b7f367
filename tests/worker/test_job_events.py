"""The worker's job events (seqserve.shared.events) on the real Redis: jobs batched together
each get their own stream, with a token event per decode step holding each of their inputs'
words (the same words their results hold), translate jobs a sentence event per finished chunk,
and status events around the run. Streams are bounded and expire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from seqserve.services.worker.batching import first_batch
from seqserve.services.worker.events import ended
from seqserve.services.worker.runner import run_batch, run_wakeup
from seqserve.shared.config import reset_settings
from seqserve.shared.db.session import session_scope
from seqserve.shared.events import JobEvent, JobEventLog, stream_key
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.notify import FinalState, channel, parse_finished
from tests.conftest import REDIS_URL, built_context, create_key
from tests.worker.test_batching import wakeup_of


@pytest.fixture()
def api(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SEQSERVE_CPU_CHUNK_ROWS", '{"translate": 4}')
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as client:
        yield client


def _submit(api: TestClient, kind: str, model: str, inputs: list[str], params: dict[str, Any]) -> uuid.UUID:
    response = api.post("/v1/jobs", json={"kind": kind, "model": model, "inputs": inputs, "params": params})
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def _events(job_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    entries = redis.Redis.from_url(REDIS_URL).xrange(stream_key(str(job_id)))
    return [(fields[b"event"].decode(), json.loads(fields[b"data"])) for _, fields in entries]


def _result(job_id: uuid.UUID) -> list[Any]:
    with session_scope() as session:
        job = jobs_repo.get(session, job_id)
        assert job is not None and job.status == "succeeded", job and job.error
        return list(job.result or [])


def test_batched_generate_jobs_each_stream_their_own_tokens(api: TestClient, lm: str) -> None:
    params = {"max_tokens": 6, "seed": 3, "temperature": 1.0}
    inputs = [["the market"], ["stocks fell", "we"], ["a", "b", "c"]]
    job_ids = [_submit(api, "generate", lm, texts, params) for texts in inputs]
    report = run_wakeup(wakeup_of(job_ids[0]), built_context())
    assert report.batches == 1 and report.jobs == 3  # streamed or not, the jobs ran as one batch
    for job_id, texts in zip(job_ids, inputs, strict=True):
        events = _events(job_id)
        assert [name for name, _ in events] == ["status"] + ["token"] * 6 + ["status"]
        assert [data["status"] for name, data in events if name == "status"] == ["running", "succeeded"]
        tokens = [data for name, data in events if name == "token"]
        assert [t["step"] for t in tokens] == list(range(6)) and all(t["job_id"] == str(job_id) for t in tokens)
        results = _result(job_id)
        for index in range(len(texts)):
            assert [t["tokens"][index] for t in tokens] == results[index]["tokens"]


def test_translate_streams_each_finished_chunk(api: TestClient, translator: str) -> None:
    inputs = [f"a man rides a horse number {i} ." for i in range(10)] + ["two dogs play ."]
    job_id = _submit(api, "translate", translator, inputs, {"max_tokens": 12})
    run_wakeup(wakeup_of(job_id), built_context())
    sentences = [data["translations"] for name, data in _events(job_id) if name == "sentence"]
    assert len(sentences) == 3  # 11 inputs in chunks of 4
    seen = {int(index): text for chunk in sentences for index, text in chunk.items()}
    assert seen == {i: r["translation"] for i, r in enumerate(_result(job_id))}


def test_streams_are_bounded_and_expire(db: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    log = JobEventLog(client, maxlen=10, ttl_seconds=30)
    for step in range(500):
        log.publish([JobEvent("j1", "token", {"step": step, "tokens": ["x"]})])
    key = stream_key("j1")
    assert client.xlen(key) < 200  # approximate trimming keeps about maxlen (whole radix nodes)
    last = json.loads(client.xrevrange(key, count=1)[0][1][b"data"])
    assert last["step"] == 499  # the oldest go first
    assert 0 < client.ttl(key) <= 30


def test_a_broken_redis_drops_events_without_failing(db: str) -> None:
    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    log = JobEventLog(broken, maxlen=10, ttl_seconds=30)
    log.publish([JobEvent("j2", "status", {"status": "running"})])  # logged, not raised
    ended(broken, log, {"j2": FinalState(status="failed", attempts=1)})


def test_ended_tells_waiters_and_streams_in_one_go(db: str) -> None:
    """The finished event (what a `Prefer: wait` waiter reads) and each job's final status
    event, both sent by the one pipelined call after the batch's commit."""
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(channel(client))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    done, failed, chunk = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    states = {done: FinalState(status="succeeded", result=[1], attempts=1),
              failed: FinalState(status="failed", error="boom", attempts=2),
              chunk: FinalState(status="succeeded", result=[{"tags": ["NOUN"] * 40}] * 128, attempts=1)}
    ended(client, JobEventLog(client, maxlen=10, ttl_seconds=30), states, unpushed={chunk})
    message = pubsub.get_message(timeout=5)
    assert message is not None
    event = parse_finished(message["data"])
    # A corpus chunk's state stays out of the event (a waiter reads its row), its id does not.
    assert event.ids == [done, failed, chunk] and event.states == {done: states[done], failed: states[failed]}
    pubsub.close()
    for job_id, state in states.items():
        entries = client.xrange(stream_key(job_id))
        assert [(f[b"event"], json.loads(f[b"data"])) for _, f in entries] == [
            (b"status", {"job_id": job_id, "status": state.status})]
        assert 0 < client.ttl(stream_key(job_id)) <= 30


class _Steps:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def tokens(self, step: int, tokens: dict[int, str]) -> None:
        self.steps.append(step)

    def sentences(self, texts: dict[int, str]) -> None:
        raise AssertionError("a language model reports tokens")


def test_the_warmup_thread_does_not_write_into_a_streamed_jobs_events(tiny_lm: Any) -> None:
    """The warm-up thread runs the same handler as the task thread (one model cache): its
    decode steps must not reach the sink of the batch the task thread is streaming."""
    import threading

    import torch

    from seqserve.services.worker.events import streaming
    from seqserve.services.worker.handlers.generate import LanguageModelHandler
    from seqserve.shared.checkpoint import load_checkpoint

    handler = LanguageModelHandler.from_checkpoint(load_checkpoint(tiny_lm.checkpoint_path, tiny_lm.sha256),
                                                   torch.device("cpu"))
    sink = _Steps()
    with streaming(handler, sink):  # type: ignore[arg-type]
        warmup = threading.Thread(target=handler.run, args=(["the company said"], {"max_tokens": 4}))
        warmup.start()
        warmup.join()
        assert sink.steps == []
        handler.run(["we"], {"max_tokens": 3, "seed": 1})
    assert sink.steps == [0, 1, 2] and handler.event_sink is None


def test_a_classify_batch_sends_running_with_its_end(api: TestClient, registered_model: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """No decode steps to stream: the `running` events travel in the pipeline after the
    commit, before each job's final status, instead of a round trip of their own."""
    own_trips: list[list[JobEvent]] = []
    publish = JobEventLog.publish
    monkeypatch.setattr(JobEventLog, "publish", lambda self, events: own_trips.append(list(events)) or
                        publish(self, events))
    job_ids = [_submit(api, "classify", registered_model, texts, {}) for texts in (["a fine film"], ["dull", "bad"])]
    report = run_wakeup(wakeup_of(job_ids[0]), built_context())
    assert report.batches == 1 and report.jobs == 2
    assert own_trips == []
    for job_id in job_ids:
        assert [data["status"] for name, data in _events(job_id)] == ["running", "succeeded"]
        assert len(_result(job_id)) in (1, 2)


def test_a_job_cancelled_mid_batch_gets_no_late_running_event(api: TestClient, registered_model: str) -> None:
    """The deferred `running` event goes only to the jobs whose results were written: a job
    cancelled while its batch computed must not read `running` after its end."""
    kept, cancelled = (_submit(api, "classify", registered_model, ["a fine film"], {}) for _ in range(2))
    context = built_context()
    batch = first_batch(wakeup_of(kept), context)
    assert batch is not None and {m.claim.job_id for m in batch.members} == {kept, cancelled}
    assert api.post(f"/v1/jobs/{cancelled}/cancel").status_code == 200
    run_batch(context, batch)
    assert [data["status"] for _, data in _events(kept)] == ["running", "succeeded"]
    assert "running" not in [data.get("status") for _, data in _events(cancelled)]
    assert api.get(f"/v1/jobs/{cancelled}").json()["status"] == "cancelled"
