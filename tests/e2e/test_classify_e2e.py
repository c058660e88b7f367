"""Submission to result through real processes: uvicorn api, Celery worker, Postgres, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.service import NewVersion, move_alias, register_version
from tests import processes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running api and worker; yields the API base URL."""
    with processes.running(stack_env, tmp_path_factory.mktemp("logs"), ["worker", "--concurrency", "1"]) as base:
        yield base


def test_classify_job_from_submission_to_result(stack: str, registered_model: str, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    texts = ["a gorgeous , witty , seductive movie .", "the plot is dull and the acting is worse .", "ok"]
    response = processes.post(f"{stack}/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": texts})
    assert response.status_code == 202
    job = processes.wait_job(stack, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1 and job["model_version"] == 1
    assert job["timings"]["total_seconds"] >= job["timings"]["run_seconds"] > 0
    # The worker's answer equals running the registered checkpoint here, input by input.
    handler = build_handler(load_checkpoint(tiny_classifier.checkpoint_path, tiny_classifier.sha256), "cpu")
    expected = handler.run(texts, {})
    assert [r["label"] for r in job["result"]] == [e["label"] for e in expected]
    for got, want in zip(job["result"], expected, strict=True):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
        assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_tampered_checkpoint_fails_the_job_with_a_readable_error(
    stack: str, registered_model: str, tiny_classifier, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    tampered = tmp_path / "model.pt"
    data = bytearray(tiny_classifier.checkpoint_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    # Registered as a new version, so no worker has it cached from an earlier job.
    with session_scope() as session:
        register_version(session, NewVersion(
            model_name=registered_model, task="classify", checkpoint_uri=str(tampered),
            sha256=tiny_classifier.sha256, size_bytes=len(data), metrics=tiny_classifier.metrics,
            primary_metric="accuracy", dataset_fingerprint=tiny_classifier.data_fingerprint,
        ))
        move_alias(session, registered_model, "production", 2)
    response = processes.post(f"{stack}/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": ["x"]})
    job = processes.wait_job(stack, response.json()["id"])
    assert job["status"] == "failed"
    assert job["model_version"] == 2
    assert "ChecksumMismatchError" in job["error"] and "sha256" in job["error"]
    assert str(tmp_path) not in job["error"] and "model.pt" in job["error"]  # no server directory
    assert job["result"] is None
