"""The ONNX Runtime backend gives the torch path's outputs for every kind; its export cache is
verified and shared safely; a failed export falls back to torch; the setting is validated."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from pydantic import ValidationError

from seqserve.services.worker import backends
from seqserve.services.worker.backends import OnnxCache, attach_backend, choose_backend
from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint, save_checkpoint
from seqserve.shared.config import Settings
from seqserve.shared.nn.dense_models import unique_words
from seqserve.shared.nn.onnx_export import export_task
from tests.worker.payloads import TEXTS, classifier, language_model, tagger, translator

TOL = 1e-4


def _both(payload: dict[str, Any], tmp_path: Path, chunk: int = 4) -> tuple[Any, Any]:
    """The payload's handler on torch and on ONNX Runtime (through a saved checkpoint)."""
    sha, _ = save_checkpoint(tmp_path / "model.pt", payload)
    settings = Settings(inference_backend="onnxruntime", torch_threads=1,
                        cpu_chunk_rows={"classify": chunk, "tag": chunk, "translate": chunk})
    torch_handler = build_handler(payload, "cpu", settings)
    onnx_handler = build_handler(payload, "cpu", settings)
    assert attach_backend(onnx_handler, tmp_path / "model.pt", sha, settings) == "onnxruntime"
    return torch_handler, onnx_handler


def _assert_close(a: list[float], b: list[float]) -> None:
    assert len(a) == len(b)
    assert max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0) <= TOL


@pytest.mark.parametrize(("cell", "layers", "bidirectional"),
                         [("lstm", 2, True), ("gru", 1, True), ("gru", 2, True), ("rnn", 2, False), ("lstm", 1, False)])
def test_classify_same_labels_and_probabilities(tmp_path: Path, cell: str, layers: int, bidirectional: bool) -> None:
    torch_handler, onnx_handler = _both(classifier(cell, layers, bidirectional), tmp_path)
    expected, actual = torch_handler.run(TEXTS, {}), onnx_handler.run(TEXTS, {})
    for e, a in zip(expected, actual, strict=True):
        assert a["label"] == e["label"]
        _assert_close(list(a["probabilities"].values()), list(e["probabilities"].values()))


def test_trained_classifier_same_results(tmp_path: Path, tiny_classifier: Any) -> None:
    payload = load_checkpoint(tiny_classifier.checkpoint_path, tiny_classifier.sha256)
    torch_handler, onnx_handler = _both(payload, tmp_path, chunk=64)
    expected, actual = torch_handler.run(TEXTS * 3, {}), onnx_handler.run(TEXTS * 3, {})
    assert [a["label"] for a in actual] == [e["label"] for e in expected]
    for e, a in zip(expected, actual, strict=True):
        _assert_close(list(a["probabilities"].values()), list(e["probabilities"].values()))


@pytest.mark.parametrize(("cell", "char_hidden"), [("lstm", 4), ("gru", 4), ("lstm", 0)])
def test_tag_same_tags_and_probabilities(tmp_path: Path, cell: str, char_hidden: int) -> None:
    torch_handler, onnx_handler = _both(tagger(cell, char_hidden), tmp_path)
    expected, actual = torch_handler.run(TEXTS, {}), onnx_handler.run(TEXTS, {})
    assert [a["tags"] for a in actual] == [e["tags"] for e in expected]
    for e, a in zip(expected, actual, strict=True):
        _assert_close(a["probabilities"], e["probabilities"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_score_within_tolerance(tmp_path: Path, cell: str) -> None:
    torch_handler, onnx_handler = _both(language_model(cell), tmp_path)
    expected, actual = torch_handler.run(TEXTS, {}, "score"), onnx_handler.run(TEXTS, {}, "score")
    for e, a in zip(expected, actual, strict=True):
        assert a["tokens"] == e["tokens"]
        _assert_close(a["token_logprobs"], e["token_logprobs"])
        assert abs(a["logprob"] - e["logprob"]) <= TOL * len(a["tokens"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("params", [{"temperature": 0.0, "max_tokens": 12, "next_word_top_k": 3},
                                    {"temperature": 1.0, "top_k": 5, "seed": 7, "max_tokens": 12}])
def test_generation_identical(tmp_path: Path, cell: str, params: dict[str, Any]) -> None:
    torch_handler, onnx_handler = _both(language_model(cell), tmp_path)
    expected, actual = torch_handler.run(TEXTS, params, "generate"), onnx_handler.run(TEXTS, params, "generate")
    assert [a["tokens"] for a in actual] == [e["tokens"] for e in expected]
    if "next_word_top_k" in params:
        assert [[w["word"] for w in a["next_words"]] for a in actual] == \
               [[w["word"] for w in e["next_words"]] for e in expected]


@pytest.mark.parametrize(("cell", "attention"), [("gru", "bahdanau"), ("lstm", "luong"), ("lstm", "bahdanau")])
@pytest.mark.parametrize("beam", [1, 4])
def test_translate_identical_at_the_same_beam(tmp_path: Path, cell: str, attention: str, beam: int) -> None:
    torch_handler, onnx_handler = _both(translator(cell, attention), tmp_path, chunk=3)
    params = {"beam_size": beam, "max_tokens": 8, "length_penalty": 1.0}
    expected, actual = torch_handler.run(TEXTS, params), onnx_handler.run(TEXTS, params)
    assert [a["tokens"] for a in actual] == [e["tokens"] for e in expected]
    _assert_close([a["score"] for a in actual], [e["score"] for e in expected])


@pytest.mark.parametrize(("task", "payload", "nodes"), [
    ("tag", tagger("lstm", 4), {"LSTM": 3}),  # the char BiLSTM and 2 word BiLSTM layers
    ("classify", classifier("gru", 2, True), {"GRU": 2}),
    ("classify", classifier("rnn", 2, False), {"RNN": 2}),
])
def test_each_recurrent_layer_is_one_native_node_over_both_directions(
    task: str, payload: dict[str, Any], nodes: dict[str, int]
) -> None:
    model = build_handler(payload, "cpu", Settings()).model
    graph = onnx.load_from_string(export_task(task, model)[task]).graph
    recurrent = [node for node in graph.node if node.op_type in ("LSTM", "GRU", "RNN")]
    assert {op: sum(n.op_type == op for n in recurrent) for op in nodes} == nodes
    for node in recurrent:
        assert len(node.input) >= 5 and node.input[4]  # sequence_lens: each row stops at its length
    assert not any(node.op_type == "GatherElements" for node in graph.node)  # no per-row reversal


def test_unique_words_gives_each_spelling_once() -> None:
    chars = torch.tensor([[[3, 4, 0], [5, 0, 0], [3, 4, 0]], [[5, 0, 0], [0, 0, 0], [0, 0, 0]]])
    unique, inverse = unique_words(chars)
    assert unique.size(0) == 3 and len({tuple(row) for row in unique.tolist()}) == 3
    assert inverse.dtype == torch.long and torch.equal(unique[inverse], chars)


def test_a_cached_export_is_reused_and_a_corrupted_one_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = classifier("lstm", 1, True)
    sha, _ = save_checkpoint(tmp_path / "model.pt", payload)
    settings = Settings(inference_backend="onnxruntime", onnx_cache_dir=tmp_path / "cache")
    exports: list[str] = []
    real_export = backends.export_task
    monkeypatch.setattr(backends, "export_task", lambda task, model: exports.append(task) or real_export(task, model))
    expected = build_handler(payload, "cpu", settings).run(TEXTS, {})

    def served() -> list[dict[str, Any]]:
        handler = build_handler(payload, "cpu", settings)
        assert attach_backend(handler, tmp_path / "model.pt", sha, settings) == "onnxruntime"
        assert handler.rows_per_pass == backends.ONNX_CHUNK_ROWS["classify"]  # its own measured chunk
        return handler.run(TEXTS, {})

    served()
    graph = OnnxCache(settings.onnx_cache_dir).directory(tmp_path / "model.pt", sha) / "classify.onnx"
    assert graph.exists() and exports == ["classify"]
    served()
    assert exports == ["classify"]  # read back and verified, not exported again
    good = graph.read_bytes()
    graph.write_bytes(good[:-64] + bytes(64))  # same size, different bytes: only the sha256 tells
    assert [r["label"] for r in served()] == [r["label"] for r in expected]
    assert exports == ["classify", "classify"] and graph.read_bytes() == good
    assert [p.name for p in graph.parent.parent.iterdir()] == [graph.parent.name]  # no staging left behind


def test_a_cache_entry_of_another_checkpoint_is_not_used(tmp_path: Path) -> None:
    cache = OnnxCache(tmp_path)
    directory = cache.directory(tmp_path / "model.pt", "a" * 64)
    cache.write(directory, "b" * 64, {"classify": b"graph"})
    assert cache.read(directory, "a" * 64) is None
    assert cache.read(directory, "b" * 64) == {"classify": b"graph"}


def test_an_unwritable_cache_still_serves_the_export(tmp_path: Path) -> None:
    payload = classifier("gru", 1, True)
    sha, _ = save_checkpoint(tmp_path / "model.pt", payload)
    (tmp_path / "not-a-dir").write_text("")
    settings = Settings(inference_backend="onnxruntime", onnx_cache_dir=tmp_path / "not-a-dir" / "cache")
    handler = build_handler(payload, "cpu", settings)
    assert attach_backend(handler, tmp_path / "model.pt", sha, settings) == "onnxruntime"
    expected = build_handler(payload, "cpu", settings).run(TEXTS, {})
    assert [r["label"] for r in handler.run(TEXTS, {})] == [r["label"] for r in expected]


def test_two_writers_of_one_export_leave_one_complete_copy(tmp_path: Path) -> None:
    cache = OnnxCache(tmp_path)
    directory = cache.directory(tmp_path / "model.pt", "c" * 64)
    cache.write(directory, "c" * 64, {"tag": b"first"})
    cache.write(directory, "c" * 64, {"tag": b"second"})  # loses the rename, keeps the first
    assert cache.read(directory, "c" * 64) == {"tag": b"first"}
    assert [p.name for p in tmp_path.iterdir()] == [directory.name]


def test_a_failed_export_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    payload = tagger("lstm", 4)
    sha, _ = save_checkpoint(tmp_path / "model.pt", payload)
    settings = Settings(inference_backend="onnxruntime", onnx_cache_dir=tmp_path / "cache")

    def broken(task: str, model: torch.nn.Module) -> dict[str, bytes]:
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(backends, "export_task", broken)
    handler = build_handler(payload, "cpu", settings)
    with caplog.at_level(logging.ERROR, logger=backends.__name__):
        assert attach_backend(handler, tmp_path / "model.pt", sha, settings) == "torch"
    assert "exporter says no" in caplog.text and len(caplog.records) == 1
    assert handler.forward is handler.model
    assert handler.run(TEXTS, {}) == build_handler(payload, "cpu", settings).run(TEXTS, {})


def test_backend_setting_is_validated_and_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="inference_backend"):
        Settings(inference_backend="tensorrt")  # type: ignore[arg-type]
    monkeypatch.setenv("SEQSERVE_INFERENCE_BACKEND", "torch")
    assert Settings().inference_backend == "torch"
    assert choose_backend("classify", "cpu", Settings()) == "torch"
    auto = Settings(inference_backend="auto")
    assert [choose_backend(t, "cpu", auto) for t in backends.AUTO] == list(backends.AUTO.values())
    forced = Settings(inference_backend="onnxruntime")
    assert choose_backend("translate", "cuda", forced) == "torch"  # CUDA stays on torch
    assert choose_backend("embeddings", "cpu", forced) == "torch"  # table lookups: nothing to export
