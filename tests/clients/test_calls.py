"""The client's request building and retry policy, with no server: what each batch call
sends (the corpus-batch contract), the Idempotency-Key on creates, Retry-After handling."""

from __future__ import annotations

import httpx
from seqserve_client import Batch, Job
from seqserve_client import _calls as calls
from seqserve_client._transport import Call, RetryPolicy
from seqserve_client.errors import BadRequest, ServerError, error_from_response


def test_creates_carry_an_idempotency_key_and_prefer_wait() -> None:
    call = calls.create_job(calls.job_body("tag", "m", "one text", {"a": 1}, "high", None), wait=90)
    assert call.json == {"kind": "tag", "model": "m", "inputs": ["one text"], "params": {"a": 1}, "priority": "high"}
    assert call.headers["Prefer"] == "wait=60" and call.headers["Idempotency-Key"] and call.idempotent
    assert calls.create_job({}, idempotency_key="k1").headers == {"Idempotency-Key": "k1"}
    assert not calls.cancel_job("j").idempotent and calls.get_job("j").idempotent


def test_batch_calls_follow_the_contract(tmp_path) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "a"}\n')
    upload = calls.upload_file(corpus, "jsonl")
    assert (upload.method, upload.path, upload.data) == ("POST", "/v1/files", {"format": "jsonl"})
    assert upload.files is not None and upload.files["file"][:2] == ("corpus.jsonl", b'{"text": "a"}\n')
    body = calls.batch_body("tag", "m", "file-1", None, None, "24h", None, "skip")
    assert body == {"kind": "tag", "model": "m", "input_file": "file-1", "completion_window": "24h",
                    "on_malformed": "skip"}
    assert "Idempotency-Key" in calls.create_batch(body).headers
    listing = calls.list_batches("completed", None, "m", 10, None)
    assert (listing.path, listing.params) == ("/v1/batches", {"status": "completed", "model": "m", "limit": 10})
    assert calls.batch_output("b1", "conllu").params == {"format": "conllu"}
    assert calls.batch_errors("b1").path == "/v1/batches/b1/errors"
    assert calls.cancel_batch("b1").path == "/v1/batches/b1/cancel"


def test_batch_json_is_typed() -> None:
    batch = Batch.from_json({"id": "b", "kind": "tag", "model": "m", "status": "in_progress", "input_file": "f",
                             "request_counts": {"total": 10, "completed": 4, "failed": 1}, "new_field": 1,
                             "created_at": "2026-01-01T00:00:00+00:00", "completed_at": None})
    assert batch.request_counts.completed == 4 and not batch.done and batch.extra == {"new_field": 1}
    assert batch.created_at is not None and batch.created_at.year == 2026


def test_retry_policy_honours_retry_after() -> None:
    policy = RetryPolicy(retries=2)
    slow = httpx.Response(429, headers={"Retry-After": "7"})
    assert policy.retry_response(0, slow) and policy.delay(0, slow) == 7
    assert not policy.retry_response(2, slow)  # retries ran out
    assert policy.delay(0, httpx.Response(503, headers={"Retry-After": "9999"})) == 60  # capped
    assert not policy.retry_response(0, httpx.Response(500))
    post = Call("POST", "/v1/jobs/j/cancel")
    assert policy.retry_error(0, post, httpx.ConnectError("refused"))  # never sent: safe
    assert not policy.retry_error(0, post, httpx.ReadTimeout("lost"))  # may have run: not resent


def test_errors_are_typed_from_any_body() -> None:
    error = error_from_response(httpx.Response(422, json={"error": {"code": "c", "message": "m", "field": "f"}}))
    assert isinstance(error, BadRequest) and (error.code, error.field, error.message) == ("c", "f", "m")
    text = error_from_response(httpx.Response(502, text="bad gateway"))
    assert isinstance(text, ServerError) and text.code == "http_502" and text.message == "bad gateway"


def test_job_results_are_typed_per_kind() -> None:
    job = Job.from_json({"id": "j", "kind": "translate", "model": "m", "model_name": "m", "model_version": 1,
                         "status": "succeeded", "priority": "normal", "num_inputs": 1, "params": {},
                         "result": [{"translation": "ein Hund", "tokens": ["ein", "Hund"], "score": -1.5}],
                         "error": None, "attempts": 1, "created_at": "2026-01-01T00:00:00Z", "started_at": None,
                         "finished_at": None, "timings": {}})
    assert job.done and job.result is not None and job.result[0].translation == "ein Hund"
