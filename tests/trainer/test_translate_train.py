from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqserve.services.trainer.translate import (
    BOS,
    EOS,
    TranslateBatch,
    corpus_bleu,
    known_source,
    sequence_loss,
    target_vocab,
    train_translator,
)
from seqserve.shared import drift
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, sha256_file
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from seqserve.shared.text.corpus_tokens import to_corpus_tokens
from seqserve.shared.text.vocab import Vocab
from seqserve.shared.training.configs import TranslateConfig
from seqserve.shared.training.presets import PRESETS, resolve_config

resolve = functools.partial(resolve_config, "translate")
TINY = {
    "max_train_examples": 300, "epochs": 1, "src_embedding_dim": 8, "tgt_embedding_dim": 8,
    "hidden_size": 16, "max_decode_len": 8, "beam_size": 2, "eval_batch_size": 512,
}


def test_tiny_run_writes_checkpoint_and_curve(data_dir: Path, tmp_path: Path) -> None:
    epochs: list[dict] = []
    out = tmp_path / "run" / "model.pt"
    outcome = train_translator(data_dir, out, "quick", TINY, torch.device("cpu"), epochs.append, False)

    assert outcome.checkpoint_path == out and outcome.curve_path == out.parent / "curve.png"
    assert outcome.curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outcome.sha256 == sha256_file(out) and outcome.size_bytes == out.stat().st_size
    assert set(outcome.metrics) == {"bleu", "loss", "test_bleu"}
    assert 0.0 <= outcome.metrics["bleu"] <= 100.0 and 0.0 <= outcome.metrics["test_bleu"] <= 100.0
    assert outcome.metrics["loss"] > 0
    assert outcome.primary_metric == "bleu"
    assert outcome.config["max_train_examples"] == 300 and outcome.config["preset"] == "quick"
    assert len(outcome.history) == 1 and epochs == outcome.history
    assert 0.0 <= epochs[0]["dev_bleu"] <= 100.0

    payload = load_checkpoint(out, outcome.sha256)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["task"] == "translate"
    assert payload["model_config"] == outcome.model_config
    assert payload["model_config"]["src_vocab_size"] == len(payload["src_vocab"])
    assert payload["model_config"]["tgt_vocab_size"] == len(payload["tgt_vocab"])
    assert payload["tgt_vocab"][:4] == ["<pad>", "<unk>", BOS, EOS]
    assert payload["data_fingerprint"] == outcome.data_fingerprint
    assert payload["metrics"] == outcome.metrics
    assert payload["train_config"]["best_epoch"] == 1
    model = Seq2Seq(Seq2SeqConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])  # strict: every weight is there


def _batch(extra_pad: int) -> TranslateBatch:
    src = torch.tensor([[4, 5, 6], [7, 8, 0]])
    tgt_in = torch.tensor([[2, 4, 5, 6], [2, 7, 0, 0]])
    tgt_out = torch.tensor([[4, 5, 6, 3], [7, 3, 0, 0]])
    widen = lambda t: F.pad(t, (0, extra_pad))  # noqa: E731
    return TranslateBatch(widen(src), torch.tensor([3, 2]), widen(tgt_in), widen(tgt_out))


def test_loss_averages_real_target_steps_and_ignores_padding() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=9, tgt_vocab_size=9, hidden_size=8, src_embedding_dim=4,
                                  tgt_embedding_dim=4)).eval()
    with torch.no_grad():
        tight, padded = sequence_loss(model, _batch(0)), sequence_loss(model, _batch(3))
        logits = model(_batch(0).src, _batch(0).src_lengths, _batch(0).tgt_in)
        real = _batch(0).tgt_out != 0
        by_hand = F.cross_entropy(logits[real], _batch(0).tgt_out[real])
    torch.testing.assert_close(padded, tight)
    torch.testing.assert_close(tight, by_hand)


def test_bleu_is_on_given_tokens() -> None:
    assert corpus_bleu(["ein hund läuft ."], ["ein hund läuft ."]) == pytest.approx(100.0)
    assert corpus_bleu(["zwei katzen"], ["ein hund läuft ."]) == 0.0


def test_target_vocab_reserves_bos_and_eos() -> None:
    vocab = target_vocab([["b", "a", "a"], ["a", "c"]], min_freq=2, max_size=None)
    assert vocab.to_list() == ["<pad>", "<unk>", BOS, EOS, "a"]
    assert len(target_vocab([["a", "b", "b", "c"]], 1, max_size=5)) == 5


def test_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="'hidden'"):
        resolve("quick", {"hidden": 3})
    with pytest.raises(ValueError, match="'epochs'"):
        resolve("quick", {"epochs": "3"})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve("huge")
    config = resolve("full", {"lr": 1, "attention": "luong", "max_train_examples": 10})
    assert config["lr"] == 1.0 and config["attention"] == "luong" and config["preset"] == "full"


def test_presets_are_translate_configs() -> None:
    assert all(isinstance(config, TranslateConfig) for config in PRESETS["translate"].values())


@pytest.mark.parametrize(
    "override",
    [{"cell": "transformer"}, {"attention": "dot"}, {"batch_size": 0}, {"dropout": 1.0},
     {"label_smoothing": 1.5}, {"bidirectional": 1}, {"schedule": "cosine"}, {"max_train_examples": -5},
     {"corpus": ""}, {"beam_size": 0}, {"length_penalty": -1.0}],
)
def test_bad_override_values_are_rejected(override: dict) -> None:
    with pytest.raises(ValueError, match=repr(next(iter(override)))):
        resolve("quick", override)


def test_a_tiny_run_records_a_drift_reference_that_out_of_domain_text_moves_away_from(
        data_dir: Path, tmp_path: Path) -> None:
    outcome = train_translator(data_dir, tmp_path / "model.pt", "quick", TINY, torch.device("cpu"), progress=False)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    reference = outcome.drift_reference
    assert reference is not None and payload["drift_reference"] == reference
    assert reference["inputs"] == 1014 and reference["labels"] == []  # Multi30k val
    assert reference["predictions"] and all(key.startswith("ratio_") for key in reference["predictions"])
    assert sum(reference["predictions"].values()) == pytest.approx(1.0)
    assert 0.0 < reference["oov_ratio"] < 0.5 and reference["mean_logprob"] is None

    # The live side as the worker counts it: the handler's tokenizer, a token known unless <unk>.
    vocab = Vocab.from_list(payload["src_vocab"])
    known = functools.partial(known_source, vocab)
    in_domain = ["A man in a blue shirt is riding a bike down the street."] * 100
    foreign = ["Съешь же ещё этих мягких французских булок, да выпей чаю 1234."] * 100
    summaries = []
    for texts in (in_domain, foreign):
        live = drift.Profile()
        live.add_inputs(texts, to_corpus_tokens, known)
        summaries.append(live.summary())
    (near, far) = (drift.scores(reference, summary) for summary in summaries)
    assert near["chars"] < 0.25 < far["chars"], (near, far)
    assert summaries[1]["oov_ratio"] > summaries[0]["oov_ratio"] + 0.5
