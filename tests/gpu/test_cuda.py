"""On a CUDA device: inference of every kind, a training run of every task, and checkpoints
moving between devices. Skipped without CUDA (bench/gpu_check.sh runs them on a GPU machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from seqserve.services.trainer.classify import train_classifier
from seqserve.services.trainer.generate import train_language_model
from seqserve.services.trainer.tag import train_tagger
from seqserve.services.trainer.translate import train_translator
from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint
from tests.conftest import DATA_DIR
from tests.worker.payloads import TEXTS, classifier, language_model, tagger, translator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")

# (kind, payload, params, how results compare across devices)
KINDS: list[tuple[str, Any, dict[str, Any]]] = [
    ("classify", lambda: classifier("lstm", 2, True), {}),
    ("tag", lambda: tagger("lstm", 4), {}),
    ("score", lambda: language_model("lstm"), {}),
    ("generate", lambda: language_model("gru"), {"temperature": 0.0, "max_tokens": 8}),
    ("translate", lambda: translator("gru", "bahdanau"), {"beam_size": 4, "max_tokens": 8}),
    ("embed", lambda: classifier("gru", 1, True), {}),
]
# Tiny runs of each trainer: a few batches of real data, a narrow model.
TRAINERS = {
    "classify": (train_classifier, {"max_train_examples": 256, "epochs": 1, "embedding_dim": 16, "hidden_size": 16}),
    "tag": (train_tagger, {"max_train_examples": 128, "epochs": 1, "embedding_dim": 16, "hidden_size": 16}),
    "generate": (train_language_model, {"max_train_tokens": 4000, "epochs": 1, "embedding_dim": 16,
                                        "hidden_size": 16}),
    "translate": (train_translator, {"max_train_examples": 256, "epochs": 1, "src_embedding_dim": 16,
                                     "tgt_embedding_dim": 16, "hidden_size": 16}),
}
FIRST_KIND = {"classify": "classify", "tag": "tag", "generate": "score", "translate": "translate"}


def _values(result: dict[str, Any]) -> list[float]:
    """The numbers of a result that must agree across devices (to float tolerance)."""
    for key in ("probabilities", "token_logprobs", "vector"):
        if key in result:
            value = result[key]
            return list(value.values()) if isinstance(value, dict) else list(value)
    return [result["score"]] if "score" in result else []


@pytest.mark.parametrize(("kind", "make", "params"), KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_runs_on_cuda_like_on_cpu(kind: str, make: Any, params: dict[str, Any]) -> None:
    payload = make()
    inputs = TEXTS if kind != "embed" else ["film", "dull", "the"]
    on_cpu = build_handler(payload, "cpu").run(inputs, params, kind)
    on_cuda = build_handler(payload, CUDA).run(inputs, params, kind)
    for cpu, cuda in zip(on_cpu, on_cuda, strict=True):
        assert cuda.get("label") == cpu.get("label") and cuda.get("tags") == cpu.get("tags")
        assert cuda.get("tokens") == cpu.get("tokens")
        assert _values(cuda) == pytest.approx(_values(cpu), abs=1e-3)


@pytest.mark.parametrize("task", list(TRAINERS))
def test_trained_on_cuda_serves_on_cpu(task: str, tmp_path: Path) -> None:
    trainer, overrides = TRAINERS[task]
    outcome = trainer(data_dir=DATA_DIR, out_path=tmp_path / "model.pt", preset="quick", overrides=overrides,
                      device=CUDA, progress=False)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())  # saved device-free
    [result] = build_handler(payload, "cpu").run(["a dog runs on the grass ."], {}, FIRST_KIND[task])
    assert result


@pytest.mark.parametrize("task", list(TRAINERS))
def test_trained_on_cpu_serves_on_cuda(task: str, tmp_path: Path) -> None:
    trainer, overrides = TRAINERS[task]
    outcome = trainer(data_dir=DATA_DIR, out_path=tmp_path / "model.pt", preset="quick", overrides=overrides,
                      device=torch.device("cpu"), progress=False)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    kind = FIRST_KIND[task]
    text = ["a dog runs on the grass ."]
    on_cuda = build_handler(payload, CUDA).run(text, {}, kind)
    on_cpu = build_handler(payload, "cpu").run(text, {}, kind)
    assert _values(on_cuda[0]) == pytest.approx(_values(on_cpu[0]), abs=1e-3)
