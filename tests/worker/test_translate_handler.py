from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from seqserve.services.worker.handlers import translate as translate_module
from seqserve.services.worker.handlers.translate import TranslateHandler, to_corpus_tokens
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from seqserve.shared.config import Settings
from seqserve.shared.jobs.params import TranslateParams
from seqserve.shared.nn.decoding import Hypothesis, beam_search_scored
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from seqserve.shared.text.vocab import Vocab
from tests.worker.stage_metrics import one_more, stage_counts

SOURCES = ["A man's dog runs.", "", "Two cats sleep on a red sofa while a dog barks", "zebra", "  ", "a dog"]
TARGET_WORDS = ["ein", "hund", "zwei", "katzen", "&apos;s", "&quot;", "."]
PARAMS = {"beam_size": 3, "max_tokens": 6, "length_penalty": 1.0}


@pytest.fixture()
def payload() -> dict:
    torch.manual_seed(0)
    src_vocab = Vocab.build([to_corpus_tokens(t) for t in SOURCES if t != "zebra"])
    tgt_vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>", *TARGET_WORDS])
    config = Seq2SeqConfig(
        src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab), src_embedding_dim=8,
        tgt_embedding_dim=8, hidden_size=12, attention="luong", cell="lstm",
    )
    model = Seq2Seq(config)
    with torch.no_grad():  # make eos likelier, so hypotheses of different lengths compete
        model.generator.bias[config.eos_id] += 1.5
    return {
        "format": CHECKPOINT_FORMAT, "task": "translate", "model_config": dataclasses.asdict(config),
        "src_vocab": src_vocab.to_list(), "tgt_vocab": tgt_vocab.to_list(), "state_dict": model.state_dict(),
        "metrics": {}, "data_fingerprint": "", "train_config": {},
    }


def _direct(payload: dict, text: str, params: dict) -> Hypothesis:
    model = Seq2Seq(Seq2SeqConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    ids = Vocab.from_list(payload["src_vocab"]).encode(to_corpus_tokens(text))
    src, lengths = pad_sequences([ids], pad_id=0)
    beam, max_len, alpha = params["beam_size"], params["max_tokens"], params["length_penalty"]
    [best] = beam_search_scored(model, src, lengths, beam, max_len, alpha)
    return best


def test_results_come_back_in_input_order_and_match_the_model(payload: dict) -> None:
    # Two sentences per beam search: several of them, so ordering across them is exercised too.
    handler = TranslateHandler.from_checkpoint(payload, torch.device("cpu"), Settings(cpu_chunk_rows={"translate": 2}))
    before = stage_counts("translate")
    results = handler.run(SOURCES, PARAMS)
    assert stage_counts("translate") == one_more(before)
    assert len(results) == len(SOURCES)
    tgt_vocab = Vocab.from_list(payload["tgt_vocab"])
    for text, result in zip(SOURCES, results, strict=True):
        if not text.strip():
            assert result == {"translation": "", "tokens": [], "score": 0.0}
            continue
        expected = _direct(payload, text, PARAMS)
        assert result["tokens"] == [t.replace("&apos;", "'").replace("&quot;", '"')
                                    for t in tgt_vocab.decode(expected.tokens)]
        assert result["score"] == pytest.approx(expected.score, abs=1e-5)
        assert result["translation"] == " ".join(result["tokens"])
        assert len(result["tokens"]) <= PARAMS["max_tokens"] and result["score"] <= 0
    json.dumps(results)
    assert set(handler.stage_seconds) == {"preprocess", "infer", "postprocess"}


def test_batching_does_not_change_results(payload: dict) -> None:
    handler = TranslateHandler.from_checkpoint(payload, torch.device("cpu"))
    batched = handler.run(SOURCES, PARAMS)
    one_by_one = [handler.run([text], PARAMS)[0] for text in SOURCES]
    for a, b in zip(batched, one_by_one, strict=True):
        assert a["tokens"] == b["tokens"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_the_chunk_knob_changes_passes_not_outputs(payload: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = SOURCES * 4  # 24 inputs, 16 with tokens
    sizes: list[int] = []

    def recording(model: Seq2Seq, src: torch.Tensor, *args: Any) -> list[Hypothesis]:
        sizes.append(src.size(0))
        return beam_search_scored(model, src, *args)

    monkeypatch.setattr(translate_module, "beam_search_scored", recording)
    results, passes = {}, {}
    for rows in (1, 7, 64):
        handler = TranslateHandler.from_checkpoint(payload, "cpu", Settings(cpu_chunk_rows={"translate": rows}))
        results[rows], passes[rows] = handler.run(sources, PARAMS), sizes.copy()
        sizes.clear()
    assert passes == {1: [1] * 16, 7: [7, 7, 2], 64: [16]}
    for rows in (7, 64):  # equal up to float rounding (summation order follows the rows per pass)
        for a, b in zip(results[rows], results[1], strict=True):
            assert a["tokens"] == b["tokens"]
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_defaults_fill_missing_params_and_bad_ones_are_rejected(payload: dict) -> None:
    handler = TranslateHandler.from_checkpoint(payload, torch.device("cpu"))
    defaults = {"beam_size": 4, "max_tokens": 80, "length_penalty": 1.0}  # TranslateParams' defaults
    assert handler.run(["a dog"], {}) == handler.run(["a dog"], defaults)
    assert handler.run([], PARAMS) == []
    with pytest.raises(ValueError, match="top_k"):
        handler.run(["a dog"], {"top_k": 2})
    with pytest.raises(ValueError, match="beam_size"):
        handler.run(["a dog"], {"beam_size": 0})
    with pytest.raises(ValueError, match="'generate'"):
        handler.run(["a dog"], PARAMS, kind="generate")


def test_raw_text_is_spelled_like_the_training_corpus() -> None:
    assert to_corpus_tokens('A man\'s dog isn\'t "big" & red.') == [
        "a", "man", "&apos;s", "dog", "isn", "&apos;t", "&quot;", "big", "&quot;", "&amp;", "red", ".",
    ]
    assert to_corpus_tokens("   ") == []


def test_unknown_words_become_unk_and_output_entities_are_unescaped(payload: dict) -> None:
    handler = TranslateHandler.from_checkpoint(payload, torch.device("cpu"))
    prepared = handler.preprocess(["zebra dog"], TranslateParams())
    assert prepared.encoded == [[Vocab.unk_id, handler.src_vocab.encode(["dog"])[0]]]
    ids = handler.tgt_vocab.encode(["ein", "hund", "&apos;s", "&quot;"])
    [result] = handler.postprocess({0: Hypothesis(ids, -0.5)}, prepared, TranslateParams())
    assert result == {"translation": "ein hund 's \"", "tokens": ["ein", "hund", "'s", '"'], "score": -0.5}


def test_loads_from_a_saved_checkpoint_and_checks_the_task(payload: dict, tmp_path: Path) -> None:
    sha256, _ = save_checkpoint(tmp_path / "model.pt", payload)
    handler = TranslateHandler.from_checkpoint(load_checkpoint(tmp_path / "model.pt", sha256), torch.device("cpu"))
    assert handler.run(["a dog"], PARAMS) == TranslateHandler.from_checkpoint(payload, torch.device("cpu")).run(
        ["a dog"], PARAMS
    )
    with pytest.raises(ValueError, match="not 'translate'"):
        TranslateHandler.from_checkpoint({**payload, "task": "classify"}, torch.device("cpu"))
    with pytest.raises(ValueError, match="vocab"):
        TranslateHandler.from_checkpoint({**payload, "tgt_vocab": payload["tgt_vocab"][:-1]}, torch.device("cpu"))


def test_embed_and_similar_read_the_source_side(payload: dict) -> None:
    handler = TranslateHandler.from_checkpoint(payload, "cpu")
    src_vocab, matrix = payload["src_vocab"], payload["state_dict"]["src_embedding.weight"]
    word = src_vocab[2]
    [vector] = handler.run([word], {}, kind="embed")
    assert torch.equal(torch.tensor(vector["vector"]), matrix[2])
    [similar] = handler.run([word], {"k": 2}, kind="similar")
    assert len(similar["neighbours"]) == 2 and all(n["word"] in src_vocab for n in similar["neighbours"])
