"""The batch commands of `seqserve` and the client's `batches` calls against a real stack:
api, worker and beat (the batch driver runs on beat's ticks) on Postgres and Redis, with
tiny models trained on slices of their real corpora."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from seqserve_client import AsyncClient, Batch, Client, NotFound

from tests import processes
from tests.clients.test_usercli import seqserve
from tests.conftest import register_outcome, register_tiny
from tests.e2e.test_batches_e2e import _ewt_sentences, _sst2, batch_env  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def batch_stack(batch_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    logs = tmp_path_factory.mktemp("batch-cli-stack")
    with processes.running(batch_env, logs, ["worker", "--concurrency", "1"], ["beat"]) as base:
        yield base


@pytest.fixture()
def served(db: str, tiny_classifier: Any, tiny_tagger: Any, batch_stack: str) -> str:
    """The stack's URL, `tiny-sst2` (classify) and `tiny-batch-tagger` (tag) registered."""
    register_tiny(tiny_classifier)
    register_outcome("tiny-batch-tagger", "tag", tiny_tagger)
    return batch_stack


def _reviews(path: Path, count: int) -> list[str]:
    ids = [f"review-{n}" for n in range(count)]
    path.write_text("".join(json.dumps({"custom_id": i, "input": t}) + "\n" for i, t in zip(ids, _sst2(count),
                                                                                            strict=True)))
    return ids


def test_create_wait_output_shows_progress_and_writes_every_input_in_order(served: str, tmp_path: Path) -> None:
    ids = _reviews(tmp_path / "reviews.jsonl", 60)
    out = tmp_path / "out.jsonl"
    run = seqserve(served, "batches", "create", str(tmp_path / "reviews.jsonl"), "--kind", "classify",
                   "--model", "tiny-sst2", "--wait", "--output", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    # completed/total, the rate, time taken and time left: "completed ━━━ 60/60 14.7/s 0:00:04 0:00:00"
    assert re.search(r"completed .* 60/60 +\d+\.\d/s +\d:\d\d:\d\d +\d:\d\d:\d\d", run.stderr), run.stderr
    assert "completed" in run.stdout and "60/60" in run.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["custom_id"] for row in rows] == ids
    assert all(row["result"]["label"] in row["result"]["probabilities"] for row in rows)


def test_a_conllu_corpus_tagged_from_the_cli_round_trips(served: str, tmp_path: Path) -> None:
    corpus = tmp_path / "ewt.conllu"
    corpus.write_text(_ewt_sentences(12))
    created = seqserve(served, "batches", "create", str(corpus), "--kind", "tag", "--model", "tiny-batch-tagger",
                       "--wait", "--json")
    assert created.returncode == 0, created.stdout + created.stderr
    batch = json.loads(created.stdout)
    assert batch["status"] == "completed" and batch["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
    assert created.stderr == ""  # --json: no progress bar to parse around
    tagged = tmp_path / "tagged.conllu"
    download = seqserve(served, "batches", "download", batch["id"], "--format", "conllu", "--output", str(tagged))
    assert download.returncode == 0 and f"to {tagged}" in download.stderr, download.stderr
    before, after = corpus.read_text().splitlines(), tagged.read_text().splitlines()
    assert len(before) == len(after)
    words = [(old.split("\t"), new.split("\t")) for old, new in zip(before, after, strict=True)
             if old and old.split("\t")[0].isdigit()]
    assert all(new[:3] == old[:3] and new[3].isupper() and new[3] != "_" for old, new in words)
    jsonl = seqserve(served, "batches", "download", batch["id"])
    assert jsonl.returncode == 0 and len(jsonl.stdout.splitlines()) == 12
    assert seqserve(served, "batches", "download", batch["id"], "--errors").stdout == ""


def test_get_list_cancel_and_exit_codes(served: str, tmp_path: Path) -> None:
    _reviews(tmp_path / "many.jsonl", 400)
    created = json.loads(seqserve(served, "batches", "create", str(tmp_path / "many.jsonl"), "--kind", "classify",
                                  "--model", "tiny-sst2", "--json").stdout)
    assert created["status"] in ("validating", "in_progress")
    cancelled = seqserve(served, "batches", "cancel", created["id"], "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] in ("cancelling", "cancelled")
    with Client(served, api_key=processes.STACK_KEY) as client:
        assert client.batches.wait(created["id"], timeout=60, interval=0.3).status == "cancelled"
    got = seqserve(served, "batches", "get", created["id"])
    assert got.returncode == 1 and "cancelled" in got.stdout  # a batch that ended badly exits 1
    listed = json.loads(seqserve(served, "batches", "list", "--json", "--status", "cancelled").stdout)
    assert created["id"] in [item["id"] for item in listed["items"]]
    assert created["id"] in seqserve(served, "batches", "list").stdout
    missing = seqserve(served, "batches", "get", "00000000-0000-0000-0000-000000000000", "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "batch_not_found"
    no_model = seqserve(served, "batches", "create", str(tmp_path / "many.jsonl"), "--kind", "classify",
                        "--model", "no-such-model")
    assert no_model.returncode == 2 and "no-such-model" in no_model.stderr
    wrong_kind = seqserve(served, "batches", "create", str(tmp_path / "many.jsonl"), "--kind", "classify",
                          "--model", "tiny-batch-tagger", "--json")
    assert wrong_kind.returncode == 2 and json.loads(wrong_kind.stdout)["error"]["field"]


def test_client_upload_create_wait_download_sync(served: str, tmp_path: Path) -> None:
    ids = _reviews(tmp_path / "reviews.jsonl", 30)
    seen: list[Batch] = []
    with Client(served, api_key=processes.STACK_KEY) as client:
        upload = client.batches.upload(tmp_path / "reviews.jsonl")
        assert (upload.lines, upload.format) == (30, "jsonl")
        batch = client.batches.create("classify", "tiny-sst2", upload.id)
        ended = client.batches.wait(batch.id, timeout=120, progress=seen.append, interval=0.2)
        assert ended.status == "completed" and ended.request_counts.completed == 30 and ended.output_file
        assert seen[-1] == ended and all(b.request_counts.total in (0, 30) for b in seen)
        content = client.batches.download(batch.id, tmp_path / "out.jsonl")
        assert (tmp_path / "out.jsonl").read_bytes() == content
        assert [json.loads(line)["custom_id"] for line in content.splitlines()] == ids
        assert client.batches.download(batch.id, errors=True) == b""
        assert batch.id in [b.id for b in client.batches.list(kind="classify").items]
        with pytest.raises(NotFound) as missing:
            client.batches.get("00000000-0000-0000-0000-000000000000")
        assert missing.value.code == "batch_not_found"


def test_a_wait_holds_each_look_and_sees_the_end_at_once(served: str, tmp_path: Path) -> None:
    _reviews(tmp_path / "reviews.jsonl", 20)
    seen: list[Batch] = []
    with Client(served, api_key=processes.STACK_KEY) as client:
        batch = client.batches.create("classify", "tiny-sst2", client.batches.upload(tmp_path / "reviews.jsonl").id)
        started = time.monotonic()
        # A look every 30 s for progress: the server holds each and answers when the batch ends.
        ended = client.batches.wait(batch.id, timeout=120, progress=seen.append, interval=30)
        took = time.monotonic() - started
    assert ended.status == "completed" and ended.request_counts.completed == 20
    assert took < 25 and len(seen) <= 3  # polling would have slept 30 s after the first look


def test_client_upload_create_wait_download_async(served: str, tmp_path: Path) -> None:
    ids = _reviews(tmp_path / "reviews.jsonl", 30)
    seen: list[int] = []

    async def progress(batch: Batch) -> None:
        seen.append(batch.request_counts.completed)

    async def main() -> tuple[Batch, bytes]:
        async with AsyncClient(served, api_key=processes.STACK_KEY) as client:
            upload = await client.batches.upload(tmp_path / "reviews.jsonl")
            batch = await client.batches.create("classify", "tiny-sst2", upload.id)
            ended = await client.batches.wait(batch.id, timeout=120, progress=progress, interval=30)  # held looks
            return ended, await client.batches.download(batch.id, tmp_path / "async.jsonl")

    started = time.monotonic()
    ended, content = asyncio.run(main())
    assert time.monotonic() - started < 25 and len(seen) <= 3  # the held look answered at the end
    assert ended.status == "completed" and seen[-1] == 30 and seen == sorted(seen)
    assert [json.loads(line)["custom_id"] for line in content.splitlines()] == ids
    assert (tmp_path / "async.jsonl").read_bytes() == content
