"""Corpus batches end to end: a real api, worker and beat (the driver runs on beat's ticks) on
Postgres and Redis, with tiny models trained on slices of their real corpora."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

from tests import processes
from tests.conftest import DATA_DIR, register_outcome

pytestmark = pytest.mark.e2e

ENDED = ("completed", "failed", "expired", "cancelled")


@pytest.fixture(scope="module")
def batch_env(stack_env: dict[str, str]) -> dict[str, str]:
    return stack_env | {
        # Small chunks, few in flight: a few hundred inputs make many chunks and many driver steps.
        "SEQSERVE_BATCH_CHUNK_INPUTS": '{"classify": 10, "tag": 8}',
        "SEQSERVE_BATCH_MAX_CHUNKS_IN_FLIGHT": "3",
        "SEQSERVE_BATCH_DRIVER_INTERVAL_SECONDS": "0.5",
        "SEQSERVE_JOB_LEASE_SECONDS": "3",
        "SEQSERVE_RECONCILE_INTERVAL_SECONDS": "1",
    }


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batches-logs")


@pytest.fixture(scope="module")
def stack(batch_env: dict[str, str], logs: Path) -> Iterator[tuple[str, dict[str, Popen[bytes]]]]:
    with processes.running_processes(batch_env, logs, ["worker", "--concurrency", "1"], ["beat"]) as running:
        yield running


@pytest.fixture()
def api(stack: tuple[str, dict[str, Popen[bytes]]], registered_model: str) -> str:
    return stack[0]


def _upload(api: str, name: str, content: bytes) -> str:
    response = processes.post(f"{api}/v1/files", files={"file": (name, content)}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _create(api: str, file_id: str, kind: str, model: str) -> dict[str, Any]:
    response = processes.post(f"{api}/v1/batches", json={"kind": kind, "model": model, "input_file": file_id})
    assert response.status_code == 202, response.text
    return response.json()


def _wait(api: str, batch_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = processes.get(f"{api}/v1/batches/{batch_id}", timeout=10).json()
        if batch["status"] in ENDED:
            return batch
        time.sleep(0.3)
    raise TimeoutError(f"batch {batch_id} still {batch['status']}: {batch['request_counts']}")


def _jsonl(api: str, path: str) -> list[dict[str, Any]]:
    response = processes.get(f"{api}{path}", timeout=30)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def _ewt_sentences(count: int) -> str:
    text = gzip.decompress((DATA_DIR / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz").read_bytes()).decode()
    return "".join(block + "\n\n" for block in text.split("\n\n")[:count])


def _sst2(count: int) -> list[str]:
    rows = (DATA_DIR / "sst2" / "glue" / "dev.tsv").read_text().splitlines()[1:count + 1]
    return [row.split("\t")[0].strip() for row in rows]


def test_conllu_round_trip_through_real_workers(api: str, tiny_tagger: Any) -> None:
    model = register_outcome("tiny-batch-tagger", "tag", tiny_tagger)
    original = _ewt_sentences(40)
    assert any("-" in line.split("\t")[0] for line in original.splitlines() if line and not line.startswith("#"))
    batch = _wait(api, _create(api, _upload(api, "ewt.conllu", original.encode()), "tag", model)["id"])
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 40, "completed": 40, "failed": 0}
    out = processes.get(f"{api}/v1/batches/{batch['id']}/output", params={"format": "conllu"}, timeout=30).text
    before, after = original.splitlines(), out.splitlines()
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        old_cols, new_cols = old.split("\t"), new.split("\t")
        if old.startswith("#") or not old or not old_cols[0].isdigit():
            assert new == old  # comments, multiword tokens, empty nodes, blank lines: intact
        else:
            assert new_cols[:3] + new_cols[4:] == old_cols[:3] + old_cols[4:]  # all but UPOS round-trips
            assert new_cols[3].isupper() and new_cols[3] != "_"
    rows = _jsonl(api, f"/v1/batches/{batch['id']}/output")
    assert rows[0]["custom_id"] == "weblog-blogspot.com_nominations_20041117172713_ENG_20041117_172713-0001"
    assert len(rows[0]["result"]["tags"]) == len(rows[0]["result"]["tokens"])


def test_jsonl_pretokenized_and_plain_text_batches(api: str, registered_model: str, tiny_tagger: Any) -> None:
    tagger = register_outcome("tiny-batch-tagger", "tag", tiny_tagger)
    lines = [{"custom_id": "tok", "input": ["New", "York", "is", "n't", "far"]},
             {"custom_id": "raw", "input": "The cat sat on the mat ."}]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    tagged = _wait(api, _create(api, _upload(api, "mixed.jsonl", content), "tag", tagger)["id"])
    assert tagged["status"] == "completed", tagged
    rows = _jsonl(api, f"/v1/batches/{tagged['id']}/output")
    assert [row["custom_id"] for row in rows] == ["tok", "raw"]
    assert rows[0]["result"]["tokens"] == ["New", "York", "is", "n't", "far"]  # kept as given
    assert rows[1]["result"]["tokens"] == ["The", "cat", "sat", "on", "the", "mat", "."]
    texts = _sst2(25)
    classified = _wait(api, _create(api, _upload(api, "reviews.txt", "\n".join(texts).encode()), "classify",
                                    registered_model)["id"])
    assert classified["status"] == "completed", classified
    rows = _jsonl(api, f"/v1/batches/{classified['id']}/output")
    assert [row["custom_id"] for row in rows] == [str(n) for n in range(1, 26)]
    single = processes.post(f"{api}/v1/jobs", json={"kind": "classify", "model": registered_model,
                                                    "inputs": [texts[3]]}, headers={"Prefer": "wait=30"}).json()
    assert rows[3]["result"] == single["result"][0]  # the same per-input shape as a job's result


def test_a_sigkilled_worker_mid_batch_loses_and_duplicates_nothing(
    stack: tuple[str, dict[str, Popen[bytes]]], registered_model: str
) -> None:
    api, procs = stack
    texts = _sst2(400)
    content = "".join(json.dumps({"custom_id": f"r{i}", "input": t}) + "\n" for i, t in enumerate(texts)).encode()
    batch = _create(api, _upload(api, "many.jsonl", content), "classify", registered_model)
    deadline = time.monotonic() + 120
    while (counts := processes.get(f"{api}/v1/batches/{batch['id']}").json()["request_counts"])["completed"] < 50:
        assert time.monotonic() < deadline, "the batch never got going"
        time.sleep(0.1)
    assert counts["completed"] < 400, "the batch ended before the kill"
    for child in processes.children(procs["worker"].pid):
        os.kill(child, signal.SIGKILL)
    ended = _wait(api, batch["id"])
    assert ended["status"] == "completed", ended
    assert ended["request_counts"] == {"total": 400, "completed": 400, "failed": 0}
    ids = [row["custom_id"] for row in _jsonl(api, f"/v1/batches/{batch['id']}/output")]
    assert ids == [f"r{i}" for i in range(400)]  # every input once, in order
    assert _jsonl(api, f"/v1/batches/{batch['id']}/errors") == []


def test_the_compose_layout_drives_a_batch_from_its_chunk_ends(
    batch_env: dict[str, str], tmp_path: Path, registered_model: str
) -> None:
    """docker-compose's layout: the inference worker leaves `maintenance` to a worker of its own
    (`--queues`, as the gpu-worker is given them). Beat's driver tick is far off, so only the
    step at creation and the steps the inference worker queues as chunks end move the batch:
    six chunks, three in flight."""
    env = batch_env | {"SEQSERVE_BATCH_DRIVER_INTERVAL_SECONDS": "600"}
    inference = ["worker", "--concurrency", "1", "--queues", "inference.high,inference.normal,inference.low,webhooks"]
    with processes.running_processes(env, tmp_path, inference, ["beat"]) as (api, _):
        maintenance = processes.start(["worker", "--concurrency", "1", "--queues", "maintenance",
                                       "--hostname", "maintenance@%h"], env, tmp_path / "maintenance.log")
        try:
            texts = _sst2(60)
            file_id = _upload(api, "sixty.txt", "\n".join(texts).encode())
            batch = _wait(api, _create(api, file_id, "classify", registered_model)["id"], timeout=120)
            assert batch["status"] == "completed", batch
            assert batch["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
            rows = _jsonl(api, f"/v1/batches/{batch['id']}/output")
            assert [row["custom_id"] for row in rows] == [str(n) for n in range(1, 61)]
        finally:
            processes.stop(maintenance)
