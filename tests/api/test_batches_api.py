"""Corpus batches over the ASGI app and the real driver on Postgres and Redis; the tests play
the worker through the real claim and finish (tests/e2e/test_batches_e2e.py runs real workers)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from seqserve.services.api.main import create_app
from seqserve.services.worker.batch_driver import advance
from seqserve.shared.config import get_settings, reset_settings
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.db.session import session_scope
from seqserve.shared.notify import channel
from seqserve.shared.queueing import MAINTENANCE_QUEUE, make_celery
from seqserve.shared.storage import FileStore
from tests.api.batch_helpers import create, drive_to_end, jsonl, lines, queued_chunks, run_chunks, step, upload
from tests.conftest import REDIS_URL, claim_group_of, create_key, finish


def _label(text: Any) -> dict[str, Any]:
    return {"label": "positive", "echo": text}


@pytest.fixture()
def client(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    # Small chunks and a small in-flight bound: a few dozen inputs exercise many chunks.
    monkeypatch.setenv("SEQSERVE_BATCH_CHUNK_INPUTS", '{"classify": 4, "tag": 3}')
    monkeypatch.setenv("SEQSERVE_BATCH_MAX_CHUNKS_IN_FLIGHT", "2")
    monkeypatch.setenv("SEQSERVE_BATCH_WINDOW_MIN_SECONDS", "1")
    reset_settings()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _sample(client: TestClient, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _inputs(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"req-{i}", "input": f"sentence number {i}"} for i in range(n)]


def test_jsonl_batch_runs_in_chunks_and_writes_output_in_input_order(client: TestClient, registered_model: str) -> None:
    source = upload(client, "reviews.jsonl", jsonl(_inputs(19)))
    completed_before = _sample(client, 'seqserve_corpus_batch_inputs_total{status="completed"}')
    batch = create(client, source["id"], registered_model)
    assert _sample(client, 'seqserve_corpus_batches{status="validating"}') == 1
    assert batch["status"] == "validating" and batch["priority"] == "low"
    assert step(batch["id"]) == "in_progress"
    chunks = queued_chunks(batch["id"])
    assert [first for _, first, _ in chunks] == [0, 4]  # chunks of 4, at most 2 in flight
    assert all(len(inputs) == 4 for _, _, inputs in chunks)
    # Chunks finished out of order still give an output in input order.
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["status"] == "completed", ended
    assert ended["request_counts"] == {"total": 19, "completed": 19, "failed": 0}
    output = lines(client.get(f"/v1/batches/{batch['id']}/output"))
    assert [row["custom_id"] for row in output] == [f"req-{i}" for i in range(19)]
    assert output[7]["result"] == _label("sentence number 7")
    assert lines(client.get(f"/v1/batches/{batch['id']}/errors")) == []
    same = client.get(f"/v1/files/{ended['output_file']}/content")
    assert same.status_code == 200 and lines(same) == output
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 5  # ceil(19 / 4)
    assert _sample(client, 'seqserve_corpus_batches{status="completed"}') == 1
    assert _sample(client, 'seqserve_corpus_batch_inputs_total{status="completed"}') == completed_before + 19


def test_a_rerun_step_never_duplicates_a_chunk(client: TestClient, registered_model: str) -> None:
    batch = create(client, upload(client, "a.jsonl", jsonl(_inputs(6)))["id"], registered_model)
    step(batch["id"])
    before = queued_chunks(batch["id"])
    with session_scope() as session:  # as if the driver died after inserting, before moving resume_at
        from seqserve.shared.db.batch_models import Batch

        row = session.get(Batch, uuid.UUID(batch["id"]))
        assert row is not None
        row.resume_at = {"index": 0, "offset": 0, "line": 1, "sentence": 0}
    step(batch["id"])
    assert queued_chunks(batch["id"]) == before


def test_malformed_line_fails_the_batch_with_its_line_number(client: TestClient, registered_model: str) -> None:
    content = jsonl(_inputs(2)) + b"\n{not json\n" + jsonl([{"custom_id": "x", "input": ""}])
    batch = create(client, upload(client, "bad.jsonl", content)["id"], registered_model)
    assert step(batch["id"]) == "failed"  # ended at validation
    failed = client.get(f"/v1/batches/{batch['id']}").json()
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert [error["line"] for error in failed["errors"]] == [4, 5]
    assert "not JSON" in failed["errors"][0]["message"] and "empty" in failed["errors"][1]["message"]
    assert queued_chunks(batch["id"]) == []
    assert client.get(f"/v1/batches/{batch['id']}/output").json()["error"]["code"] == "batch_has_no_output"


def test_malformed_lines_skipped_go_to_the_error_file(client: TestClient, registered_model: str) -> None:
    content = jsonl(_inputs(3)) + b'{"custom_id": "bad", "input": 5}\n' + jsonl([{"custom_id": "last", "input": "ok"}])
    batch = create(client, upload(client, "skip.jsonl", content)["id"], registered_model, on_malformed="skip")
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["status"] == "completed"
    assert ended["request_counts"] == {"total": 5, "completed": 4, "failed": 1}
    errors = lines(client.get(f"/v1/batches/{batch['id']}/errors"))
    assert errors == [{"custom_id": "bad", "line": 4, "error": {"code": "malformed",
                                                                "message": "input must be a string"}}]
    assert [row["custom_id"] for row in lines(client.get(f"/v1/batches/{batch['id']}/output"))] == [
        "req-0", "req-1", "req-2", "last"]


def test_a_failed_chunk_puts_its_inputs_in_the_error_file(client: TestClient, registered_model: str) -> None:
    batch = create(client, upload(client, "f.jsonl", jsonl(_inputs(8)))["id"], registered_model)
    step(batch["id"])
    run_chunks(batch["id"], _label, fail_first=4)
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["request_counts"] == {"total": 8, "completed": 4, "failed": 4}
    errors = lines(client.get(f"/v1/batches/{batch['id']}/errors"))
    assert [row["custom_id"] for row in errors] == ["req-4", "req-5", "req-6", "req-7"]
    assert errors[0]["error"] == {"code": "failed", "message": "handler error: boom"}


def test_plain_text_inputs_are_lines_named_by_their_number(client: TestClient, registered_model: str) -> None:
    source = upload(client, "corpus.txt", b"first line\n\nthird line\n")
    assert source["format"] == "text" and source["lines"] == 3
    batch = create(client, source["id"], registered_model)
    drive_to_end(client, batch["id"], _label)
    output = lines(client.get(f"/v1/batches/{batch['id']}/output"))
    assert [(row["custom_id"], row["result"]["echo"]) for row in output] == [("1", "first line"), ("3", "third line")]


def test_cancel_ends_queued_chunks_and_lists_the_rest_as_cancelled(client: TestClient, registered_model: str) -> None:
    batch = create(client, upload(client, "c.jsonl", jsonl(_inputs(12)))["id"], registered_model)
    step(batch["id"])
    run_chunks(batch["id"], _label)  # the first 8 inputs ran
    step(batch["id"])  # queues inputs 8-11
    cancelling = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert cancelling.status_code == 200 and cancelling.json()["status"] == "cancelling"
    assert queued_chunks(batch["id"]) == []
    assert step(batch["id"]) == "cancelled"
    ended = client.get(f"/v1/batches/{batch['id']}").json()
    assert ended["status"] == "cancelled" and ended["cancelled_at"] is not None
    assert ended["request_counts"] == {"total": 12, "completed": 8, "failed": 4}
    errors = lines(client.get(f"/v1/batches/{batch['id']}/errors"))
    assert {row["error"]["code"] for row in errors} == {"cancelled"} and len(errors) == 4
    again = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "batch_not_cancellable"


def test_past_its_window_a_batch_expires_with_what_finished(client: TestClient, registered_model: str) -> None:
    batch = create(client, upload(client, "e.jsonl", jsonl(_inputs(12)))["id"], registered_model,
                   completion_window="1s")
    step(batch["id"])
    run_chunks(batch["id"], _label)
    with session_scope() as session:  # the window passed (no sleeping in tests)
        from datetime import timedelta

        from seqserve.shared.db.batch_models import Batch
        row = session.get(Batch, uuid.UUID(batch["id"]))
        assert row is not None
        row.expires_at = row.created_at - timedelta(seconds=1)
    assert step(batch["id"]) == "expired"
    ended = client.get(f"/v1/batches/{batch['id']}").json()
    assert ended["status"] == "expired" and ended["expired_at"] is not None
    assert [row["custom_id"] for row in lines(client.get(f"/v1/batches/{batch['id']}/output"))] == [
        f"req-{i}" for i in range(8)]
    errors = lines(client.get(f"/v1/batches/{batch['id']}/errors"))
    assert [(row["custom_id"], row["error"]["code"]) for row in errors] == [(f"req-{i}", "expired") for i in range(8, 12)]


def test_output_is_refused_until_the_batch_ended(client: TestClient, registered_model: str) -> None:
    batch = create(client, upload(client, "w.jsonl", jsonl(_inputs(3)))["id"], registered_model)
    response = client.get(f"/v1/batches/{batch['id']}/output")
    assert response.status_code == 409 and response.json()["error"]["code"] == "batch_not_ended"
    conllu = client.get(f"/v1/batches/{batch['id']}/output", params={"format": "conllu"})
    assert conllu.status_code == 409


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"kind": "nope"}, 422, "kind"),
    ({"completion_window": "10d"}, 422, "completion_window"),
    ({"completion_window": "9000h"}, 422, "completion_window"),
    ({"priority": "urgent"}, 422, "priority"),
    ({"params": {"beam_size": 2}}, 422, "params.beam_size"),
    ({"model": "no-such-model"}, 404, "model"),
    ({"input_file": str(uuid.uuid4())}, 404, "input_file"),
    ({"on_malformed": "ignore"}, 422, "on_malformed"),
    ({"webhook_url": "https://example.com/hook"}, 422, "webhook_url"),
    ({"kind": "tag"}, 422, "kind"),
])
def test_bad_batch_requests_name_their_field(client: TestClient, registered_model: str, body: dict, status: int,
                                             field: str) -> None:
    source = upload(client, "ok.jsonl", jsonl(_inputs(1)))
    response = client.post("/v1/batches", json={"kind": "classify", "model": registered_model,
                                                "input_file": source["id"]} | body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_conllu_input_is_for_tag_only(client: TestClient, registered_model: str) -> None:
    source = upload(client, "t.conllu", b"1\tHi\t_\t_\t_\t_\t_\t_\t_\t_\n\n")
    response = client.post("/v1/batches", json={"kind": "classify", "model": registered_model,
                                                "input_file": source["id"]})
    assert response.status_code == 422 and response.json()["error"]["field"] == "input_file"


def test_list_filters_and_paginates(client: TestClient, registered_model: str) -> None:
    source = upload(client, "l.jsonl", jsonl(_inputs(1)))
    ids = [create(client, source["id"], registered_model)["id"] for _ in range(3)]
    client.post(f"/v1/batches/{ids[0]}/cancel")
    seen, cursor = [], None
    while True:
        page = client.get("/v1/batches", params={"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
        seen += [batch["id"] for batch in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert [b["id"] for b in client.get("/v1/batches", params={"status": "cancelling"}).json()["items"]] == [ids[0]]
    assert client.get("/v1/batches", params={"kind": "tag"}).json()["items"] == []
    assert client.get("/v1/batches", params={"kind": "bogus"}).status_code == 422


def test_another_teams_batches_and_files_are_absent(client: TestClient, registered_model: str) -> None:
    source = upload(client, "mine.jsonl", jsonl(_inputs(2)))
    batch = create(client, source["id"], registered_model)
    other = {"Authorization": f"Bearer {create_key('other-team', ('jobs:read', 'jobs:write'))}"}
    for path in (f"/v1/batches/{batch['id']}", f"/v1/files/{source['id']}", f"/v1/files/{source['id']}/content",
                 f"/v1/batches/{batch['id']}/output"):
        response = client.get(path, headers=other)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] in ("batch_not_found", "file_not_found")
    assert client.post(f"/v1/batches/{batch['id']}/cancel", headers=other).status_code == 404
    assert client.get("/v1/batches", headers=other).json()["items"] == []
    theirs = client.post("/v1/batches", headers=other, json={"kind": "classify", "model": registered_model,
                                                              "input_file": source["id"]})
    assert theirs.status_code == 404 and theirs.json()["error"]["field"] == "input_file"
    reader = {"Authorization": f"Bearer {create_key('other-team', ('jobs:read',))}"}
    assert client.post("/v1/files", headers=reader, files={"file": ("x.txt", b"hi\n")}).status_code == 403


def test_the_jobs_list_leaves_chunk_jobs_out_unless_asked(client: TestClient, registered_model: str) -> None:
    direct = client.post("/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["one"]})
    assert direct.status_code == 202, direct.text
    batch = create(client, upload(client, "r.jsonl", jsonl(_inputs(8)))["id"], registered_model)
    step(batch["id"])
    chunk_ids = {str(job_id) for job_id, _, _ in queued_chunks(batch["id"])}
    assert len(chunk_ids) == 2

    def listed(**query: Any) -> list[dict[str, Any]]:
        response = client.get("/v1/jobs", params=query)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    assert [job["id"] for job in listed()] == [direct.json()["id"]]
    assert direct.json()["batch_id"] is None
    of_batch = listed(batch_id=batch["id"])
    assert {job["id"] for job in of_batch} == chunk_ids and {job["batch_id"] for job in of_batch} == {batch["id"]}
    assert {job["id"] for job in listed(include_chunks="true")} == chunk_ids | {direct.json()["id"]}
    assert listed(batch_id=str(uuid.uuid4())) == []
    other_team = client.get("/v1/jobs", params={"batch_id": batch["id"]},
                            headers={"Authorization": f"Bearer {create_key(team='blue')}"})
    assert other_team.status_code == 200 and other_team.json()["items"] == []
    assert client.get("/v1/jobs", params={"batch_id": "not-a-uuid"}).status_code == 422


def _growing(batch_id: str) -> Path:
    store = FileStore.from_settings(get_settings())
    final = store.path(uuid.uuid5(uuid.UUID(batch_id), "output"))
    return final.with_name(f"{final.name}.growing")


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def test_the_output_grows_as_chunks_end_and_a_dead_writers_bytes_are_cut(client: TestClient,
                                                                         registered_model: str) -> None:
    batch = create(client, upload(client, "g.jsonl", jsonl(_inputs(12)))["id"], registered_model)
    step(batch["id"])  # chunks 0 and 4
    run_chunks(batch["id"], _label)
    step(batch["id"])  # appends inputs 0-7, queues chunk 8
    assert _ids(_growing(batch["id"])) == [f"req-{i}" for i in range(8)]
    with open(_growing(batch["id"]), "ab") as out:  # a step that wrote more and died before its commit
        out.write(b'{"custom_id":"req-8","result":{"lab')
    run_chunks(batch["id"], _label)
    assert step(batch["id"]) == "completed"  # the last step appends 8-11 and only closes the files
    assert not _growing(batch["id"]).exists()
    ended = client.get(f"/v1/batches/{batch['id']}").json()
    assert ended["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
    output = lines(client.get(f"/v1/batches/{batch['id']}/output"))
    assert [row["custom_id"] for row in output] == [f"req-{i}" for i in range(12)]  # each once, in order
    assert output[8]["result"] == _label("sentence number 8")
    described = client.get(f"/v1/files/{ended['output_file']}").json()
    content = client.get(f"/v1/files/{ended['output_file']}/content").content
    assert described["lines"] == 12 and described["bytes"] == len(content)
    assert described["sha256"] == hashlib.sha256(content).hexdigest()


def test_a_chunk_that_ends_late_holds_back_only_the_lines_after_it(client: TestClient, registered_model: str) -> None:
    content = jsonl(_inputs(4)) + b"{broken\n" + jsonl(_inputs(8)[4:])
    batch = create(client, upload(client, "h.jsonl", content)["id"], registered_model, on_malformed="skip")
    step(batch["id"])
    (first, _, _), (second, _, _) = queued_chunks(batch["id"])
    for claimed in claim_group_of(first):  # both chunks claimed; only the second one ends
        if claimed.claim.job_id == second:
            assert finish(claimed, JobStatus.succeeded, result=[_label(text) for text in claimed.inputs])
    step(batch["id"])
    assert _ids(_growing(batch["id"])) == []  # input 0's chunk still runs
    with session_scope() as session:
        from seqserve.shared.db.batch_models import Batch
        row = session.get(Batch, uuid.UUID(batch["id"]))
        assert row is not None and row.output_progress is not None
        assert row.output_progress["position"]["index"] == 0
    with session_scope() as session:  # the first chunk's worker died; its lease lapsed: run it again
        session.execute(update(Job).where(Job.id == first).values(status=JobStatus.queued.value))
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["request_counts"] == {"total": 9, "completed": 8, "failed": 1}
    assert [row["custom_id"] for row in lines(client.get(f"/v1/batches/{batch['id']}/output"))] == [
        f"req-{i}" for i in range(8)]
    assert [row["line"] for row in lines(client.get(f"/v1/batches/{batch['id']}/errors"))] == [5]


def test_with_growing_output_off_the_whole_output_is_written_at_the_end(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_OUTPUT_AS_CHUNKS_END", "false")
    reset_settings()
    batch = create(client, upload(client, "n.jsonl", jsonl(_inputs(10)))["id"], registered_model)
    step(batch["id"])
    run_chunks(batch["id"], _label)
    step(batch["id"])
    assert not _growing(batch["id"]).exists()
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["status"] == "completed"
    assert [row["custom_id"] for row in lines(client.get(f"/v1/batches/{batch['id']}/output"))] == [
        f"req-{i}" for i in range(10)]


def test_a_step_reads_a_bounded_slice_and_queues_the_next_step(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_STEP_INPUTS", "5")
    monkeypatch.setenv("SEQSERVE_BATCH_VALIDATE_STEP_INPUTS", "5")
    monkeypatch.setenv("SEQSERVE_BATCH_VALIDATE_STEP_SECONDS", "60")  # the count bounds these steps
    reset_settings()
    broker = redis.Redis.from_url(REDIS_URL)
    content = jsonl(_inputs(6)) + b"{broken\n" + jsonl(_inputs(12)[6:])
    batch = create(client, upload(client, "s.jsonl", content)["id"], registered_model, on_malformed="skip")
    queued = broker.llen(MAINTENANCE_QUEUE)
    assert [step(batch["id"]) for _ in range(2)] == ["validating", "validating"]
    assert broker.llen(MAINTENANCE_QUEUE) == queued + 2  # each stopped short: the next one is queued
    assert step(batch["id"]) == "in_progress"
    # One chunk of 4 a step (5 inputs hold one), submitted while validating; then the in-flight bound (2).
    assert [first for _, first, _ in queued_chunks(batch["id"])] == [0, 4]
    run_chunks(batch["id"], _label)
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["request_counts"] == {"total": 13, "completed": 12, "failed": 1}
    assert [row["custom_id"] for row in lines(client.get(f"/v1/batches/{batch['id']}/output"))] == [
        f"req-{i}" for i in range(12)]
    assert [row["line"] for row in lines(client.get(f"/v1/batches/{batch['id']}/errors"))] == [7]


def test_a_validation_step_ends_at_its_time_bound_after_one_input_at_least(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_VALIDATE_STEP_SECONDS", "0")
    reset_settings()
    batch = create(client, upload(client, "t.jsonl", jsonl(_inputs(3)))["id"], registered_model)
    # Past its time bound at once, each step still validates one input: the third reaches the end.
    assert [step(batch["id"]) for _ in range(3)] == ["validating", "validating", "in_progress"]
    assert client.get(f"/v1/batches/{batch['id']}").json()["request_counts"]["total"] == 3


def test_chunks_of_the_inputs_validated_so_far_run_while_the_file_is_still_validating(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_VALIDATE_STEP_INPUTS", "5")
    reset_settings()
    batch = create(client, upload(client, "v.jsonl", jsonl(_inputs(19)))["id"], registered_model)
    assert step(batch["id"]) == "validating"  # 5 validated: one whole chunk of 4, the fifth waits for its chunk
    assert [(first, len(inputs)) for _, first, inputs in queued_chunks(batch["id"])] == [(0, 4)]
    assert client.get(f"/v1/batches/{batch['id']}").json()["request_counts"]["total"] == 5
    run_chunks(batch["id"], _label)  # a chunk may end before the file is read to its end
    assert step(batch["id"]) == "validating"  # 10 validated: the chunk from input 4 (8 and 9 wait)
    assert [first for _, first, _ in queued_chunks(batch["id"])] == [4]
    running = client.get(f"/v1/batches/{batch['id']}").json()
    assert running["request_counts"] == {"total": 10, "completed": 4, "failed": 0}
    ended = drive_to_end(client, batch["id"], _label)
    assert ended["status"] == "completed" and ended["request_counts"] == {"total": 19, "completed": 19, "failed": 0}
    output = lines(client.get(f"/v1/batches/{batch['id']}/output"))
    assert [row["custom_id"] for row in output] == [f"req-{i}" for i in range(19)]
    with session_scope() as session:  # every input in one chunk: none submitted twice across the two phases
        assert session.scalar(select(func.count()).select_from(Job).where(Job.batch_id == uuid.UUID(batch["id"]))) == 5


def test_a_malformed_line_past_the_submitted_chunks_cancels_them_and_fails_the_batch(
    client: TestClient, registered_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQSERVE_BATCH_VALIDATE_STEP_INPUTS", "5")
    reset_settings()
    later = [{"custom_id": f"late-{i}", "input": "x"} for i in range(2)]
    content = jsonl(_inputs(8)) + b"{not json\n" + jsonl(later)
    batch = create(client, upload(client, "late.jsonl", content)["id"], registered_model)
    assert step(batch["id"]) == "validating"
    (chunk_id, _, _), = queued_chunks(batch["id"])
    assert step(batch["id"]) == "failed"  # line 9 reached: the chunk is cancelled, as if never submitted
    failed = client.get(f"/v1/batches/{batch['id']}").json()
    assert [error["line"] for error in failed["errors"]] == [9]
    assert failed["request_counts"] == {"total": 11, "completed": 0, "failed": 0} and failed["output_file"] is None
    with session_scope() as session:
        chunk = session.get(Job, chunk_id)
        assert chunk is not None and chunk.status == JobStatus.cancelled.value
    assert step(batch["id"]) is None  # ended: nothing more is submitted
    assert queued_chunks(batch["id"]) == []


def test_a_read_held_with_prefer_wait_answers_when_the_batch_ends(client: TestClient, registered_model: str) -> None:
    batch = create(client, upload(client, "held.jsonl", jsonl(_inputs(10)))["id"], registered_model)
    url, batch_id = f"/v1/batches/{batch['id']}", uuid.UUID(batch["id"])
    brief = client.get(url, headers={"Prefer": "wait=1"})  # held its full second: the batch has not ended
    assert brief.status_code == 200 and brief.json()["status"] == "validating"
    assert brief.headers["Preference-Applied"] == "wait=1"
    bad = client.get(url, headers={"Prefer": "wait=soon"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_prefer"

    publisher = redis.Redis.from_url(REDIS_URL)
    events = publisher.pubsub(ignore_subscribe_messages=True)
    events.subscribe(channel(publisher))
    held: dict[str, Any] = {}

    def hold() -> None:
        response = client.get(url, headers={"Prefer": "wait=30"})
        held.update(response=response, at=time.monotonic())

    reader = threading.Thread(target=hold, daemon=True)
    reader.start()
    waiting = time.monotonic() + 20
    while str(batch_id) not in client.app.state.waiter._events and time.monotonic() < waiting:  # type: ignore[attr-defined]
        time.sleep(0.01)  # the read is held (not yet to come) before the batch runs
    assert reader.is_alive()
    for _ in range(50):  # the driver's steps as the worker's task runs them, with its Redis client
        status = advance(batch_id, make_celery(), get_settings(), publisher)
        if status == "completed":
            break
        run_chunks(batch["id"], _label)
    ended = time.monotonic()
    reader.join(timeout=20)
    assert not reader.is_alive() and held["at"] - ended < 10  # answered at the end, not after 30 s
    response = held["response"]
    assert response.status_code == 200 and response.headers["Preference-Applied"] == "wait=30"
    assert response.json()["status"] == "completed" and response.json()["request_counts"]["completed"] == 10
    published: list[str] = []  # the chunks' job events, then the batch's
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(batch["id"] in data for data in published):
        if (message := events.get_message(timeout=1)) is not None:  # None: nothing yet, or the subscription's reply
            published.append(message["data"].decode())
    assert any(batch["id"] in data for data in published)  # the step that ended it published its id
    again = client.get(url, headers={"Prefer": "wait=30"})  # an ended batch: answered at once, not held
    assert again.status_code == 200 and "Preference-Applied" not in again.headers
