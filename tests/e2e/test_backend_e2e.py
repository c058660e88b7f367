"""A real worker on the ONNX Runtime backend: it exports the registered checkpoint beside it
verified by sha256, and answers as the torch path does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from seqserve.services.worker.backends import OnnxCache
from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint
from tests import processes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = stack_env | {"SEQSERVE_INFERENCE_BACKEND": "onnxruntime"}
    with processes.running(env, tmp_path_factory.mktemp("logs"), ["worker", "--concurrency", "1"]) as base:
        yield base


def test_a_worker_on_onnxruntime_serves_from_a_verified_export_like_torch(
    stack: str, registered_model: str, tiny_classifier: Any
) -> None:
    texts = ["a gorgeous , witty , seductive movie .", "the plot is dull and the acting is worse .", "ok"]
    response = processes.post(f"{stack}/v1/jobs", json={"kind": "classify", "model": registered_model, "inputs": texts})
    job = processes.wait_job(stack, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    export = OnnxCache(None).directory(tiny_classifier.checkpoint_path, tiny_classifier.sha256)
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["checkpoint_sha256"] == tiny_classifier.sha256 and list(manifest["graphs"]) == ["classify"]
    handler = build_handler(load_checkpoint(tiny_classifier.checkpoint_path, tiny_classifier.sha256), "cpu")
    expected = handler.run(texts, {})  # torch, in this process
    assert [r["label"] for r in job["result"]] == [e["label"] for e in expected]
    for got, want in zip(job["result"], expected, strict=True):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-4)
