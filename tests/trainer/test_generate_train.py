from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch

from seqserve.services.trainer.common import bf16_autocast_supported
from seqserve.services.trainer.generate import (
    batchify,
    evaluate_stream,
    stream_batches,
    train_language_model,
)
from seqserve.services.worker.handlers.generate import LanguageModelHandler
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, sha256_file
from seqserve.shared.nn.language_model import LanguageModelConfig, RNNLanguageModel
from seqserve.shared.training.configs import GenerateConfig
from seqserve.shared.training.presets import PRESETS, resolve_config

resolve = functools.partial(resolve_config, "generate")
TINY = {
    "max_train_tokens": 4000, "epochs": 1, "embedding_dim": 16, "hidden_size": 16,
    "batch_size": 8, "bptt": 20, "eval_batch_size": 20,
}


def test_tiny_run_writes_checkpoint_and_curve(data_dir: Path, tmp_path: Path) -> None:
    epochs: list[dict] = []
    out = tmp_path / "run" / "model.pt"
    outcome = train_language_model(data_dir, out, "quick", TINY, torch.device("cpu"), epochs.append, False)

    assert outcome.checkpoint_path == out and outcome.curve_path == out.parent / "curve.png"
    assert outcome.curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outcome.sha256 == sha256_file(out) and outcome.size_bytes == out.stat().st_size
    assert outcome.primary_metric == "perplexity"
    assert set(outcome.metrics) == {"perplexity", "loss", "test_perplexity", "test_loss"}
    for split in ("", "test_"):
        perplexity = outcome.metrics[f"{split}perplexity"]
        assert math.isfinite(perplexity) and perplexity == pytest.approx(math.exp(outcome.metrics[f"{split}loss"]))
        assert 1.0 < perplexity < 10_000  # better than uniform over PTB's 10k words, even this early
    assert outcome.config["corpus"] == "ptb" and outcome.config["max_train_tokens"] == 4000
    assert len(outcome.history) == 1 and epochs == outcome.history
    assert epochs[0]["dev_perplexity"] == outcome.metrics["perplexity"]

    payload = load_checkpoint(out, outcome.sha256)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["task"] == "generate"
    assert len(payload["vocab"]) == 10_001 and payload["model_config"]["vocab_size"] == 10_001
    assert payload["model_config"] == outcome.model_config and payload["metrics"] == outcome.metrics
    assert payload["data_fingerprint"] == outcome.data_fingerprint
    assert payload["data_files"] == outcome.data_files
    names = [Path(path).name for path in outcome.data_files]
    assert names == ["ptb.train.txt.gz", "ptb.valid.txt.gz", "ptb.test.txt.gz"]
    assert all(sha256_file(path) == digest for path, digest in outcome.data_files.items())
    handler = LanguageModelHandler.from_checkpoint(payload, torch.device("cpu"))
    scored = handler.run(["the company said"], {}, kind="score")[0]
    assert scored["tokens"] == ["the", "company", "said", "<eos>"] and math.isfinite(scored["logprob"])
    assert len(handler.run(["the"], {"max_tokens": 3, "seed": 1})[0]["tokens"]) == 3


def test_batchify_and_windows_cover_the_stream() -> None:
    data = batchify(torch.arange(23), 3)
    assert data.tolist() == [list(range(0, 7)), list(range(7, 14)), list(range(14, 21))]
    batches = stream_batches(data, bptt=4)
    assert [b.first for b in batches] == [True, False]
    assert [b.inputs.shape[1] for b in batches] == [4, 2]  # the last window is shorter
    assert torch.equal(torch.cat([b.inputs for b in batches], 1), data[:, :-1])
    assert torch.equal(torch.cat([b.targets for b in batches], 1), data[:, 1:])
    assert len(batches[0]) == 12
    with pytest.raises(ValueError, match="too short"):
        batchify(torch.arange(5), 4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_windowed_evaluation_equals_one_long_pass(cell: str) -> None:
    torch.manual_seed(0)
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=8, hidden_size=8, cell=cell))
    data = batchify(torch.randint(1, 20, (200,)), 4)
    windowed = evaluate_stream(model, data, bptt=7, device=torch.device("cpu"))
    whole = evaluate_stream(model, data, bptt=1000, device=torch.device("cpu"))
    assert windowed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert windowed["perplexity"] == pytest.approx(math.exp(whole["loss"]), rel=1e-5)
    assert model.training  # the caller's mode is restored


def test_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="'hidden'"):
        resolve("quick", {"hidden": 3})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve("huge")
    cfg = resolve("full", {"lr": 1, "corpus": "wikitext2", "max_train_tokens": None})
    assert cfg["lr"] == 1.0 and cfg["corpus"] == "wikitext2" and cfg["preset"] == "full"


@pytest.mark.parametrize(
    "override",
    [{"corpus": "enwik8"}, {"cell": "transformer"}, {"bptt": 0}, {"dropout": 1.0}, {"epochs": "3"},
     {"max_train_tokens": -5}, {"tie_weights": 1}, {"autocast_bf16": "yes"}, {"schedule": "cosine"}],
)
def test_bad_override_values_are_rejected(override: dict) -> None:
    with pytest.raises(ValueError, match=repr(next(iter(override)))):
        resolve("quick", override)


def test_presets_are_generate_configs_and_target_ptb() -> None:
    quick, full = PRESETS["generate"]["quick"], PRESETS["generate"]["full"]
    assert isinstance(quick, GenerateConfig) and isinstance(full, GenerateConfig)
    assert quick.corpus == full.corpus == "ptb"
    assert full.max_train_tokens is None


def test_bf16_autocast_falls_back_to_float32_where_unsupported(data_dir: Path, tmp_path: Path) -> None:
    # The full preset asks for bf16 autocast; CPUs without native bfloat16 (this CI machine's
    # AVX2 EPYC among them) cannot build oneDNN's bf16 LSTM, and the run must still train.
    out = tmp_path / "model.pt"
    outcome = train_language_model(data_dir, out, "quick", TINY | {"autocast_bf16": True}, torch.device("cpu"),
                                   progress=False)
    supported = bf16_autocast_supported("cpu", "lstm")
    assert outcome.config["autocast_bf16"] is supported
    assert load_checkpoint(out, outcome.sha256)["train_config"]["autocast_bf16"] is supported
    assert math.isfinite(outcome.metrics["perplexity"])
    if supported:  # then the probe's promise holds for the real model too
        model = RNNLanguageModel(LanguageModelConfig(vocab_size=50, embedding_dim=8, hidden_size=8))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, _ = model(torch.ones(2, 5, dtype=torch.long))
        assert logits.shape == (2, 5, 50)


def test_full_presets_carry_a_time_budget() -> None:
    assert PRESETS["generate"]["full"].time_budget_minutes == 90.0
    assert PRESETS["generate"]["quick"].time_budget_minutes == 0.0
    assert resolve("quick", {"time_budget_minutes": 5})["time_budget_minutes"] == 5.0
    with pytest.raises(ValueError, match="time_budget_minutes"):
        resolve("quick", {"time_budget_minutes": -1})


@pytest.mark.parametrize("task", ["tag", "classify", "generate", "translate"])
def test_every_task_takes_a_weight_average_in_range(task: str) -> None:
    assert resolve_config(task, "quick")["ema_decay"] == 0.0  # off unless asked for
    assert resolve_config(task, "quick", {"ema_decay": 0.999})["ema_decay"] == 0.999
    for bad in (1.0, 1.5, -0.1, "0.9"):
        with pytest.raises(ValueError, match="ema_decay"):
            resolve_config(task, "quick", {"ema_decay": bad})


def test_a_tiny_run_records_a_drift_reference_with_the_dev_mean_logprob(data_dir: Path, tmp_path: Path) -> None:
    outcome = train_language_model(data_dir, tmp_path / "model.pt", "quick", TINY, torch.device("cpu"),
                                   progress=False)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    reference = outcome.drift_reference
    assert reference is not None and payload["drift_reference"] == reference
    assert reference["inputs"] > 3000 and reference["predictions"] == {} and reference["labels"] == []
    assert reference["mean_logprob"] == pytest.approx(-outcome.metrics["loss"])
    # The vocabulary is the whole training stream's, so dev misses only PTB's own "<unk>" (~5%).
    assert 0.03 < reference["oov_ratio"] < 0.08
    assert sum(reference["lengths"].values()) == pytest.approx(1.0)
