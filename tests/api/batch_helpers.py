"""Helpers of the in-process batch tests: upload, create, step the driver, play the worker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from seqserve.services.worker.batch_driver import advance
from seqserve.shared.config import get_settings
from seqserve.shared.db.models import Job, JobStatus
from seqserve.shared.db.session import session_scope
from seqserve.shared.queueing import make_celery
from tests.conftest import claim_group_of, finish


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def upload(client: TestClient, name: str, content: bytes, **form: str) -> dict[str, Any]:
    response = client.post("/v1/files", files={"file": (name, content)}, data=form)
    assert response.status_code == 201, response.text
    return response.json()


def create(client: TestClient, file_id: str, model: str, kind: str = "classify", **body: Any) -> dict[str, Any]:
    response = client.post("/v1/batches", json={"kind": kind, "model": model, "input_file": file_id} | body)
    assert response.status_code == 202, response.text
    return response.json()


def step(batch_id: str) -> str | None:
    """One driver step, as the worker's beat-driven task runs it."""
    return advance(uuid.UUID(batch_id), make_celery(), get_settings())


def queued_chunks(batch_id: str) -> list[tuple[uuid.UUID, int, list[Any]]]:
    with session_scope() as session:
        rows = session.execute(select(Job.id, Job.batch_line, Job.inputs).where(
            Job.batch_id == uuid.UUID(batch_id), Job.status == JobStatus.queued.value).order_by(Job.batch_line))
        return [(row[0], row[1], row[2]) for row in rows]


def run_chunks(batch_id: str, result_of: Callable[[Any], Any], fail_first: int | None = None) -> int:
    """Play the worker: claim the batch's queued chunks through the real claim and write a
    result per input (the chunk starting at input `fail_first` fails instead). Returns the
    chunks run."""
    firsts = {job_id: first for job_id, first, _ in queued_chunks(batch_id)}
    ran = 0
    while firsts:
        for claimed in claim_group_of(next(iter(firsts))):
            first = firsts.pop(claimed.claim.job_id)
            if first == fail_first:
                assert finish(claimed, JobStatus.failed, error="handler error: boom")
            else:
                assert finish(claimed, JobStatus.succeeded, result=[result_of(text) for text in claimed.inputs])
            ran += 1
    return ran


def drive_to_end(client: TestClient, batch_id: str, result_of: Callable[[Any], Any], steps: int = 200
                 ) -> dict[str, Any]:
    for _ in range(steps):
        status = step(batch_id)
        if status is None or status in ("completed", "failed", "expired", "cancelled"):
            break
        run_chunks(batch_id, result_of)
    return client.get(f"/v1/batches/{batch_id}").json()


def lines(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]
