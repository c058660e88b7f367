from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from seqserve.services.trainer.conllu import read_conllu
from seqserve.services.trainer.tag import known_word, train_tagger
from seqserve.services.worker.handlers.tag import tag_tokens
from seqserve.shared import drift
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, sha256_file
from seqserve.shared.text.vocab import Vocab
from seqserve.shared.training.configs import TagConfig
from seqserve.shared.training.presets import PRESETS, resolve_config

resolve = functools.partial(resolve_config, "tag")
TINY = {
    "max_train_examples": 150,
    "epochs": 1,
    "embedding_dim": 8,
    "char_embedding_dim": 4,
    "char_hidden_size": 4,
    "hidden_size": 8,
    "batch_size": 10,
    "lr": 0.02,
}

SENTENCE = """1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsleeps\tsleep\tVERB\tVBZ\t_\t0\troot\t_\t_

"""


def test_tiny_run_writes_checkpoint_and_curve(data_dir: Path, tmp_path: Path) -> None:
    epochs: list[dict] = []
    out = tmp_path / "run" / "model.pt"
    outcome = train_tagger(data_dir, out, "quick", TINY, torch.device("cpu"), epochs.append, False)

    assert outcome.checkpoint_path == out and outcome.curve_path == out.parent / "curve.png"
    assert outcome.curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outcome.sha256 == sha256_file(out) and outcome.size_bytes == out.stat().st_size
    assert set(outcome.metrics) == {"accuracy", "loss", "test_accuracy", "test_loss"}
    assert 0.0 <= outcome.metrics["accuracy"] <= 1.0 and 0.0 <= outcome.metrics["test_accuracy"] <= 1.0
    assert outcome.metrics["accuracy"] > 0.2  # beats always guessing NOUN, the commonest tag (~17%)
    assert outcome.primary_metric == "accuracy"
    assert outcome.config["max_train_examples"] == 150 and outcome.config["preset"] == "quick"
    assert len(outcome.history) == 1 and epochs == outcome.history

    payload = load_checkpoint(out, outcome.sha256)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["task"] == "tag"
    assert len(payload["tags"]) == 17 and payload["tags"] == sorted(payload["tags"])
    assert payload["model_config"] == outcome.model_config
    assert payload["model_config"]["vocab_size"] == len(payload["vocab"])
    assert payload["model_config"]["char_vocab_size"] == len(payload["char_vocab"])
    assert payload["lowercase_words"] is True and payload["max_word_chars"] == 30
    assert payload["data_fingerprint"] == outcome.data_fingerprint
    assert payload["metrics"] == outcome.metrics
    assert payload["train_config"]["best_epoch"] == 1


def test_pretrained_vectors_seed_the_word_embeddings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.conllu").write_text(SENTENCE * 3, encoding="utf-8")
    vectors = _vectors(tmp_path / "vec.txt")
    overrides = TINY | {
        "max_train_examples": None,
        "train_file": "train.conllu",
        "dev_file": "dev.conllu",
        "test_file": "test.conllu",
        "pretrained_embeddings": str(vectors),
        "lr": 0.0,
    }
    outcome = train_tagger(data, tmp_path / "out" / "model.pt", "quick", overrides, progress=False)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    assert (
        payload["train_config"]["pretrained_found"] == 2
    )  # "the" and "cat"; "sleeps" is not in the file
    embedding = payload["state_dict"]["embedding.weight"]
    the = payload["vocab"].index("the")  # lowercased, as the vocabulary is
    assert embedding[the].tolist() == pytest.approx([0.5] * 8)  # lr 0: the loaded vector is unchanged
    assert payload["tags"] == ["DET", "NOUN", "VERB"]


def _vectors(path: Path) -> Path:
    path.write_text("2 8\nthe " + " ".join(["0.5"] * 8) + "\ncat " + " ".join(["-0.5"] * 8) + "\n")
    return path


def test_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="'hidden'"):
        resolve("quick", {"hidden": 3})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve("huge")
    config = resolve(
        "full", {"lr": 1, "column": 4, "char_hidden_size": 0, "pretrained_embeddings": "v.txt"}
    )
    assert config["lr"] == 1.0 and config["column"] == 4 and config["char_hidden_size"] == 0
    assert resolve("quick", {"column": "xpos"})["column"] == "xpos"


def test_presets_are_tag_configs() -> None:
    assert all(isinstance(config, TagConfig) for config in PRESETS["tag"].values())


@pytest.mark.parametrize(
    "override",
    [
        {"cell": "transformer"},
        {"batch_size": 0},
        {"dropout": 1.5},
        {"bidirectional": 1},
        {"schedule": "cosine"},
        {"max_train_examples": -5},
        {"column": "pos"},
        {"column": -1},
        {"pretrained_embeddings": 3},
        {"epochs": "3"},
        {"train_file": ""},
        {"max_word_chars": 1},
    ],
)
def test_bad_override_values_are_rejected(override: dict) -> None:
    with pytest.raises(ValueError, match=repr(next(iter(override)))):
        resolve("quick", override)


def test_a_tiny_run_records_a_drift_reference_that_out_of_domain_text_moves_away_from(
        data_dir: Path, tmp_path: Path) -> None:
    outcome = train_tagger(data_dir, tmp_path / "model.pt", "quick", TINY, torch.device("cpu"), progress=False)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    reference = outcome.drift_reference
    assert reference is not None and payload["drift_reference"] == reference
    assert reference["labels"] == payload["tags"] and reference["inputs"] > 1000  # EWT dev: 2001 sentences
    assert set(reference["predictions"]) <= set(payload["tags"])
    assert sum(reference["predictions"].values()) == pytest.approx(1.0)
    assert 0.0 < reference["oov_ratio"] < 0.6 and reference["mean_logprob"] is None
    assert sum(reference["chars"].values()) == pytest.approx(1.0) and reference["chars"]["ascii_letter"] > 0.5

    # The live side as the worker counts it: the handler's tokenizer, the same known-word rule.
    vocab = Vocab(payload["vocab"])
    dev = [" ".join(words) for words, _ in read_conllu(data_dir / resolve("quick", TINY)["dev_file"], "upos")]
    foreign = ["Съешь же ещё этих мягких французских булок, да выпей чаю 1234."] * 200
    scored = {}
    for name, texts in (("dev", dev[:400]), ("foreign", foreign)):
        live = drift.Profile()
        live.add_inputs(texts, tag_tokens, functools.partial(known_word, vocab))
        scored[name] = (drift.scores(reference, live.summary()), live.summary()["oov_ratio"])
    (dev_scores, dev_oov), (foreign_scores, foreign_oov) = scored["dev"], scored["foreign"]
    assert dev_scores["chars"] < 0.1 and foreign_scores["chars"] > 0.25, (dev_scores, foreign_scores)
    assert abs(dev_oov - reference["oov_ratio"]) < 0.1 and foreign_oov > dev_oov + 0.3
