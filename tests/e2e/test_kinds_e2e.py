"""Every job kind end to end through the real api and worker: tag, classify, generate,
score, translate, each on a tiny model trained here on a slice of its real corpus."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests import processes
from tests.model_fixtures import register

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="session")
def tiny_models(tiny_tagger: Any, tiny_lm: Any, tiny_translator: Any) -> dict[str, Any]:
    """task -> TrainOutcome of a tiny model of that task (tests/model_fixtures.py)."""
    return {"tag": tiny_tagger, "generate": tiny_lm, "translate": tiny_translator}


@pytest.fixture()
def registered(db: str, tiny_models: dict[str, Any]) -> dict[str, str]:
    """Each tiny model registered with a production alias; task -> model name."""
    return {task: register(f"tiny-{task}", task, outcome) for task, outcome in tiny_models.items()}


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.running(stack_env, tmp_path_factory.mktemp("kinds"), ["worker", "--concurrency", "1"]) as base:
        yield base


def _run(stack: str, kind: str, model: str, inputs: list[str], params: dict[str, Any] | None = None) -> dict:
    body = {"kind": kind, "model": model, "inputs": inputs, "params": params or {}}
    response = processes.post(f"{stack}/v1/jobs", json=body, headers={"Prefer": "wait=60"}, timeout=70)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job["error"]
    assert len(job["result"]) == len(inputs)
    return job


def test_tag(stack: str, registered: dict[str, str]) -> None:
    job = _run(stack, "tag", registered["tag"], ["The cat sat on the mat .", "Dogs bark"])
    first, second = job["result"]
    assert first["tokens"] == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert len(first["tags"]) == len(first["probabilities"]) == 7 and len(second["tags"]) == 2
    assert all(0.0 < p <= 1.0 for p in first["probabilities"])


def test_score_is_the_sum_of_token_logprobs(stack: str, registered: dict[str, str]) -> None:
    job = _run(stack, "score", registered["generate"], ["the company said it would buy the shares", "the"])
    for entry in job["result"]:
        assert entry["logprob"] == pytest.approx(sum(entry["token_logprobs"]), abs=1e-3)
        assert entry["perplexity"] == pytest.approx(math.exp(-entry["logprob"] / len(entry["token_logprobs"])), rel=1e-3)


def test_generate_greedy_is_repeatable_and_seeded_sampling_too(stack: str, registered: dict[str, str]) -> None:
    greedy = {"max_tokens": 5, "temperature": 0.0, "next_word_top_k": 3}
    first = _run(stack, "generate", registered["generate"], ["the stock market"], greedy)["result"][0]
    again = _run(stack, "generate", registered["generate"], ["the stock market"], greedy)["result"][0]
    assert first["tokens"] == again["tokens"] and len(first["tokens"]) <= 5
    assert len(first["next_words"]) == 3
    sampled = {"max_tokens": 5, "temperature": 1.0, "top_k": 20, "seed": 7}
    one = _run(stack, "generate", registered["generate"], ["the bank"], sampled)["result"][0]
    two = _run(stack, "generate", registered["generate"], ["the bank"], sampled)["result"][0]
    assert one["tokens"] == two["tokens"]


def test_translate_greedy_and_beam(stack: str, registered: dict[str, str]) -> None:
    texts = ["a man is riding a bike .", "two dogs play in the snow ."]
    for params in ({"beam_size": 1, "max_tokens": 20}, {"beam_size": 3, "max_tokens": 20}):
        job = _run(stack, "translate", registered["translate"], texts, params)
        for entry in job["result"]:
            assert isinstance(entry["translation"], str) and len(entry["tokens"]) <= 20
