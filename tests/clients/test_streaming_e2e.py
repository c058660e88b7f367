"""Server-sent job events on a real stack: tokens arrive before the job ends, a stream
resumes with Last-Event-ID, any API process serves any job's stream, a client that hangs up
mid-stream leaves the server and the worker unharmed, and a stream is team-scoped."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from seqserve_client import Client, Event

from tests import processes
from tests.conftest import create_key

pytestmark = pytest.mark.e2e

# Slow enough on the tiny model (64 rows x 200 steps) that a stream sees it run for a while.
LONG = {"max_tokens": 200, "seed": 5, "temperature": 1.0}
PROMPTS = [f"the market {i}" for i in range(64)]


def _client(base: str) -> Client:
    return Client(base, api_key=processes.STACK_KEY)


def _stamped(events: object) -> list[tuple[float, Event]]:
    return [(time.time(), event) for event in events]  # type: ignore[attr-defined]


def test_tokens_arrive_before_the_job_ends(served: str) -> None:
    with _client(served) as client:
        stamped = _stamped(client.stream("generate", "tiny-lm", PROMPTS, LONG))
    names = [event.event for _, event in stamped]
    assert names[0] == "status" and names[-1] == "final" and names.count("token") == 200
    first_token = next(at for at, event in stamped if event.event == "token")
    job = stamped[-1][1].job
    assert job is not None and job.status == "succeeded" and job.finished_at is not None
    assert first_token < job.finished_at.timestamp()  # the first word came while the job still ran
    tokens = [event.data["tokens"] for _, event in stamped if event.event == "token"]
    for index, result in enumerate(job.result or []):
        assert [step[index] for step in tokens] == result.tokens


def test_last_event_id_resumes(served: str) -> None:
    with _client(served) as client:
        job = client.run("generate", "tiny-lm", ["a", "b"], {"max_tokens": 8, "seed": 2})
        everything = list(client.jobs.stream(job.id))  # an ended job's stream replays, then ends
        assert [e.event for e in everything] == ["status", "status"] + ["token"] * 8 + ["status", "final"]
        middle = everything[5]
        resumed = list(client.jobs.stream(job.id, last_event_id=middle.id))
    assert [(e.event, e.id) for e in resumed] == [("status", None)] + [(e.event, e.id) for e in everything[6:]]
    bad = processes.get(f"{served}/v1/jobs/{job.id}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"]


def test_post_with_stream_answers_the_event_stream(served: str) -> None:
    body = {"kind": "generate", "model": "tiny-lm", "inputs": ["we"], "params": {"max_tokens": 4}, "stream": True}
    with httpx.Client(headers=processes.STACK_AUTH, timeout=60) as http, \
            connect_sse(http, "POST", f"{served}/v1/jobs", json=body) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["location"].startswith("/v1/jobs/")
        events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    assert events[0] == ("status", {"job_id": events[-1][1]["id"], "status": "queued"})
    assert [name for name, _ in events].count("token") == 4 and events[-1][1]["status"] == "succeeded", events


def test_a_classify_stream_reads_running_then_its_end(served: str) -> None:
    """No decode steps: the worker sends `running` with the final status, after the commit
    (one round trip less); the stream still reads every status, in order, then `final`."""
    body = {"kind": "classify", "model": "tiny-sst2", "inputs": ["a fine film"], "stream": True}
    with httpx.Client(headers=processes.STACK_AUTH, timeout=60) as http, \
            connect_sse(http, "POST", f"{served}/v1/jobs", json=body) as source:
        events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    statuses = [data["status"] for name, data in events if name == "status"]
    assert statuses[0] == "queued" and statuses[-2:] == ["running", "succeeded"], events
    assert events[-1][0] == "final" and events[-1][1]["status"] == "succeeded" and len(events[-1][1]["result"]) == 1


def test_another_api_process_serves_the_stream(served: str, stack_env: dict[str, str], tmp_path: Path) -> None:
    port = processes.free_port()
    other = processes.start(["api", "--port", str(port)], stack_env, tmp_path / "api2.log")
    try:
        second = f"http://127.0.0.1:{port}"
        processes.wait_http(f"{second}/healthz", other, tmp_path / "api2.log")
        with _client(served) as first_api, _client(second) as second_api:
            job = first_api.jobs.create("generate", "tiny-lm", PROMPTS, LONG)
            events = list(second_api.jobs.stream(job.id))
    finally:
        processes.stop(other)
    assert [e.data["status"] for e in events if e.event == "status"][-1] == "succeeded"
    assert sum(e.event == "token" for e in events) == 200 and events[-1].job is not None


def test_a_client_hanging_up_mid_stream_harms_nothing(served: str) -> None:
    with _client(served) as client:
        job = client.jobs.create("generate", "tiny-lm", PROMPTS, LONG)
        with httpx.Client(headers=processes.STACK_AUTH, timeout=60) as http, \
                connect_sse(http, "GET", f"{served}/v1/jobs/{job.id}/events") as source:
            for sse in source.iter_sse():
                if sse.event == "token":
                    break  # hang up after the first word
        assert client.jobs.wait(job.id, timeout=120).status == "succeeded"  # the worker finished regardless
        again = client.run("generate", "tiny-lm", ["after"], {"max_tokens": 3})
        assert again.status == "succeeded" and len(list(client.jobs.stream(job.id))) > 200
    assert processes.get(f"{served}/readyz").status_code == 200


def test_streams_are_team_scoped(served: str) -> None:
    with _client(served) as client:
        job = client.run("generate", "tiny-lm", ["mine"], {"max_tokens": 2})
    other = {"Authorization": f"Bearer {create_key(team='other', scopes=('jobs:read',))}"}
    response = httpx.get(f"{served}/v1/jobs/{job.id}/events", headers=other, timeout=10)
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "job_not_found"


def test_a_cancelled_job_ends_its_stream(served: str) -> None:
    with _client(served) as client:
        job = client.jobs.create("generate", "tiny-lm", PROMPTS, LONG, priority="low")
        client.jobs.cancel(job.id)
        started = time.monotonic()
        events = list(client.jobs.stream(job.id))
    assert events[-1].event == "final" and events[-1].data["status"] == "cancelled"
    assert time.monotonic() - started < 30
    assert isinstance(datetime.fromisoformat(events[-1].data["created_at"]), datetime)
