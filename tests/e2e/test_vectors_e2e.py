"""`similar` and `embed` through the real api and worker: an embeddings model and a
classifier's table, plus the API's 422 for an out-of-range param."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import processes
from tests.conftest import register_outcome

pytestmark = pytest.mark.e2e


@pytest.fixture()
def vectors_model(db: str, tiny_embeddings: Any) -> str:
    return register_outcome("tiny-vectors", "embeddings", tiny_embeddings)


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.running(stack_env, tmp_path_factory.mktemp("vectors"), ["worker", "--concurrency", "1"]) as base:
        yield base


def _post(stack: str, kind: str, model: str, inputs: list[str], params: dict[str, Any]) -> httpx.Response:
    body = {"kind": kind, "model": model, "inputs": inputs, "params": params}
    return processes.post(f"{stack}/v1/jobs", json=body, headers={"Prefer": "wait=60"}, timeout=70)


def test_similar_and_embed_jobs(stack: str, vectors_model: str, registered_model: str) -> None:
    similar = _post(stack, "similar", vectors_model, ["the", "qzxmousetrap"], {"k": 3, "include_self": True})
    assert similar.status_code == 200, similar.text
    job = similar.json()
    assert job["status"] == "succeeded", job["error"]
    the, unseen = job["result"]
    assert the["neighbours"][0]["word"] == "the" and unseen["sources"] == ["subwords"]
    embed = _post(stack, "embed", registered_model, ["a fine film", "dull"], {"level": "sentence", "normalize": True})
    assert embed.status_code == 200, embed.text
    job = embed.json()
    assert job["status"] == "succeeded", job["error"]
    assert [len(r["vector"]) for r in job["result"]] == [32, 32]  # the tiny classifier's embedding_dim


def test_out_of_range_k_is_a_422_naming_the_field(stack: str, vectors_model: str) -> None:
    response = _post(stack, "similar", vectors_model, ["the"], {"k": 500})
    assert response.status_code == 422
    assert "k" in response.text and "100" in response.text


def test_models_route_shows_the_vectors_summary(stack: str, vectors_model: str) -> None:
    response = processes.get(f"{stack}/v1/models/{vectors_model}", timeout=10)
    assert response.status_code == 200, response.text
    [version] = response.json()["versions"]
    assert version["embeddings"]["dim"] == 16 and version["embeddings"]["vocab_size"] > 100
    assert version["embeddings"]["probe_neighbours"]
