from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from seqserve.services.trainer.classify import train_classifier
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, sha256_file
from seqserve.shared.training.configs import ClassifyConfig
from seqserve.shared.training.presets import PRESETS, resolve_config

resolve = functools.partial(resolve_config, "classify")
TINY = {"max_train_examples": 400, "epochs": 1, "embedding_dim": 16, "hidden_size": 16}


def test_tiny_run_writes_checkpoint_and_curve(data_dir: Path, tmp_path: Path) -> None:
    epochs: list[dict] = []
    out = tmp_path / "run" / "model.pt"
    outcome = train_classifier(data_dir, out, "quick", TINY, torch.device("cpu"), epochs.append, False)

    assert outcome.checkpoint_path == out and outcome.curve_path == out.parent / "curve.png"
    assert outcome.curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outcome.sha256 == sha256_file(out) and outcome.size_bytes == out.stat().st_size
    assert set(outcome.metrics) == {"accuracy", "macro_f1", "loss"}
    assert 0.0 <= outcome.metrics["accuracy"] <= 1.0 and 0.0 <= outcome.metrics["macro_f1"] <= 1.0
    assert outcome.metrics["loss"] > 0
    assert outcome.primary_metric == "accuracy"
    assert outcome.config["max_train_examples"] == 400 and outcome.config["preset"] == "quick"
    assert len(outcome.history) == 1 and epochs == outcome.history

    payload = load_checkpoint(out, outcome.sha256)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["task"] == "classify"
    assert payload["labels"] == ["negative", "positive"]
    assert payload["model_config"] == outcome.model_config
    assert payload["model_config"]["vocab_size"] == len(payload["vocab"])
    assert payload["data_fingerprint"] == outcome.data_fingerprint
    assert payload["metrics"] == outcome.metrics


def test_same_settings_give_the_same_model(data_dir: Path, tmp_path: Path) -> None:
    a = train_classifier(data_dir, tmp_path / "a" / "model.pt", "quick", TINY, progress=False)
    b = train_classifier(data_dir, tmp_path / "b" / "model.pt", "quick", TINY, progress=False)
    assert a.sha256 == b.sha256


def test_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="'hidden'"):
        resolve("quick", {"hidden": 3})
    with pytest.raises(ValueError, match="'epochs'"):
        resolve("quick", {"epochs": "3"})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve("huge")
    assert resolve("full", {"lr": 1, "max_train_examples": 10})["lr"] == 1.0


def test_presets_are_classify_configs() -> None:
    assert all(isinstance(config, ClassifyConfig) for config in PRESETS["classify"].values())


@pytest.mark.parametrize(
    "override",
    [{"cell": "transformer"}, {"batch_size": 0}, {"dropout": 1.5}, {"bidirectional": 1},
     {"schedule": "cosine"}, {"max_train_examples": -5}],
)
def test_bad_override_values_are_rejected(override: dict) -> None:
    with pytest.raises(ValueError, match=repr(next(iter(override)))):
        resolve("quick", override)
