from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seqserve.shared.checkpoint import (
    CHECKPOINT_FORMAT,
    ChecksumMismatchError,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
)
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier
from seqserve.shared.nn.padding import pad_sequences


def _payload(model: SentenceClassifier) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "task": "classify",
        "model_config": dataclasses.asdict(model.config),
        "vocab": ["<pad>", "<unk>"] + [f"w{i}" for i in range(28)],
        "labels": ["negative", "positive"],
        "state_dict": model.state_dict(),
        "metrics": {"accuracy": 0.5},
        "data_fingerprint": "0" * 64,
        "train_config": {"epochs": 1, "max_train_examples": None},
    }


@pytest.fixture()
def model() -> SentenceClassifier:
    torch.manual_seed(0)
    return SentenceClassifier(ClassifierConfig(vocab_size=30, num_classes=2, hidden_size=8, embedding_dim=8))


def test_save_load_gives_identical_outputs(model: SentenceClassifier, tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "model.pt"
    sha256, size = save_checkpoint(path, _payload(model))
    assert sha256 == sha256_file(path) and size == path.stat().st_size
    assert list(path.parent.iterdir()) == [path]  # the temp file was renamed, not left behind

    payload = load_checkpoint(path, expected_sha256=sha256)
    restored = SentenceClassifier(ClassifierConfig(**payload["model_config"]))
    restored.load_state_dict(payload["state_dict"])
    tokens, lengths = pad_sequences([[5, 6, 7], [9], [2, 3, 4, 5, 6]], pad_id=0)
    assert torch.equal(model.eval()(tokens, lengths), restored.eval()(tokens, lengths))
    assert payload["vocab"] == _payload(model)["vocab"]
    assert payload["train_config"] == {"epochs": 1, "max_train_examples": None}


def test_tampered_checkpoint_is_refused(model: SentenceClassifier, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    sha256, _ = save_checkpoint(path, _payload(model))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as info:
        load_checkpoint(path, expected_sha256=sha256)
    message = str(info.value)
    assert str(path) in message and sha256 in message and sha256_file(path) in message


def test_missing_checkpoint_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt", expected_sha256=None)


def test_non_checkpoint_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a seqserve-checkpoint"):
        load_checkpoint(path, expected_sha256=None)


def test_arbitrary_objects_are_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "obj": Path("x")}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        load_checkpoint(path, expected_sha256=sha256_file(path))
