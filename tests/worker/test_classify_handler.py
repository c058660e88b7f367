from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seqserve.services.worker.handlers import HANDLERS, ClassifyHandler, build_handler
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from seqserve.shared.config import Settings
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab
from tests.worker.stage_metrics import one_more, stage_counts

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["A great, moving film!", "", "It's dull.", "the plot is thin but the acting isn't bad at all", "?"]


@pytest.fixture()
def payload() -> dict:
    torch.manual_seed(0)
    vocab = Vocab.build([tokenize(t) for t in TEXTS])
    config = ClassifierConfig(vocab_size=len(vocab), num_classes=3, embedding_dim=8, hidden_size=8)
    model = SentenceClassifier(config)
    return {
        "format": CHECKPOINT_FORMAT, "task": "classify", "model_config": dataclasses.asdict(config),
        "vocab": vocab.to_list(), "labels": LABELS, "state_dict": model.state_dict(), "metrics": {},
        "data_fingerprint": "", "train_config": {},
    }


def _direct_probabilities(payload: dict, text: str) -> torch.Tensor:
    model = SentenceClassifier(ClassifierConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    ids = Vocab.from_list(payload["vocab"]).encode(tokenize(text)) or [1]
    tokens, lengths = pad_sequences([ids], pad_id=0)
    with torch.inference_mode():
        return torch.softmax(model.eval()(tokens, lengths), dim=-1)[0]


def test_results_come_back_in_input_order_and_match_the_model(payload: dict) -> None:
    handler = ClassifyHandler.from_checkpoint(payload, torch.device("cpu"))
    before = stage_counts("classify")
    results = handler.run(TEXTS, {})
    assert stage_counts("classify") == one_more(before)
    assert len(results) == len(TEXTS)
    for text, result in zip(TEXTS, results, strict=True):
        probs = result["probabilities"]
        assert list(probs) == LABELS
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
        expected = _direct_probabilities(payload, text)
        assert [probs[label] for label in LABELS] == pytest.approx(expected.tolist(), abs=1e-6)
        assert result["label"] == LABELS[int(expected.argmax())]
    assert set(handler.stage_seconds) == {"preprocess", "infer", "postprocess"}


def test_batching_does_not_change_results(payload: dict) -> None:
    handler = ClassifyHandler.from_checkpoint(payload, torch.device("cpu"))
    batched = handler.run(TEXTS, {})
    one_by_one = [handler.run([text], {})[0] for text in TEXTS]
    for a, b in zip(batched, one_by_one, strict=True):
        assert a["label"] == b["label"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_cpu_forward_passes_take_length_sorted_chunks(payload: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = ClassifyHandler.from_checkpoint(payload, "cpu").run(TEXTS, {})  # a device named by a string works too
    handler = ClassifyHandler.from_checkpoint(payload, "cpu", Settings(cpu_chunk_rows={"classify": 2}))
    shapes: list[tuple[int, ...]] = []
    forward = handler.model.forward

    def recording(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(tokens.shape))
        return forward(tokens, lengths)

    monkeypatch.setattr(handler.model, "forward", recording)
    chunked = handler.run(TEXTS, {})
    # 5 inputs in chunks of 2; each chunk pads only to its own longest (sorted longest first).
    lengths = sorted((max(len(tokenize(t)), 1) for t in TEXTS), reverse=True)
    assert shapes == [(2, lengths[0]), (2, lengths[2]), (1, lengths[4])]
    for a, b in zip(chunked, whole, strict=True):
        assert a["label"] == b["label"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_the_chunk_knob_changes_passes_not_outputs(payload: dict) -> None:
    texts = TEXTS * 13  # 65 inputs: several passes at 1 and 7 rows, two at 64
    results = {}
    for rows in (1, 7, 64):
        handler = ClassifyHandler.from_checkpoint(payload, "cpu", Settings(cpu_chunk_rows={"classify": rows}))
        assert handler.rows_per_pass == rows
        results[rows] = handler.run(texts, {})
    # Equal up to float rounding: a matmul's summation order depends on how many rows it takes.
    for rows in (7, 64):
        for a, b in zip(results[rows], results[1], strict=True):
            assert a["label"] == b["label"]
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_the_defaults_chunk_on_cpu_and_take_the_whole_batch_elsewhere(payload: dict) -> None:
    assert ClassifyHandler.from_checkpoint(payload, "cpu", Settings()).rows_per_pass == 64  # measured: docs/benchmarks
    assert ClassifyHandler.from_checkpoint(payload, "meta", Settings()).rows_per_pass == 256  # batch_max_inputs
    wide = Settings(batch_max_inputs={"classify": 1000})
    assert ClassifyHandler.from_checkpoint(payload, "meta", wide).rows_per_pass == 1000
    # The batch limit says how many inputs are gathered across jobs, not how one job runs: a
    # limit of 1 (no cross-job batching) still runs a 64-input job in chunks of 64.
    one = Settings(batch_max_inputs={"classify": 1})
    assert ClassifyHandler.from_checkpoint(payload, "cpu", one).rows_per_pass == 64
    assert ClassifyHandler.from_checkpoint(payload, "meta", one).rows_per_pass == 256  # the largest job


def test_unknown_params_are_rejected(payload: dict) -> None:
    handler = ClassifyHandler.from_checkpoint(payload, torch.device("cpu"))
    with pytest.raises(ValueError, match="top_k"):
        handler.run(["fine"], {"top_k": 2})


def test_build_handler_dispatches_on_task(payload: dict, tmp_path: Path) -> None:
    sha256, _ = save_checkpoint(tmp_path / "model.pt", payload)
    handler = build_handler(load_checkpoint(tmp_path / "model.pt", sha256), torch.device("cpu"))
    assert isinstance(handler, HANDLERS["classify"])
    assert handler.run([], {}) == []
    with pytest.raises(ValueError, match="no handler for task 'summarize'"):
        build_handler({**payload, "task": "summarize"}, torch.device("cpu"))
