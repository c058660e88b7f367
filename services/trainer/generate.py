"""Train the word-level language model (task "generate") with truncated BPTT over a corpus stream.

The token stream is cut into `batch_size` contiguous columns; each training batch is the
next `bptt` steps of every column, and the recurrent state carries over from one window to
the next (detached, so gradients stop at the window edge) and restarts from zeros each epoch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqserve.services.trainer.corpora import (
    CORPORA,
    SPLITS,
    build_vocab,
    corpus_path,
    encode_stream,
    read_corpus,
)
from seqserve.services.trainer.datasets import fingerprint
from seqserve.services.trainer.loop import fit
from seqserve.services.trainer.outcome import TrainOutcome, save_trained
from seqserve.services.trainer.presets import apply_overrides, loop_config, resolve_autocast, training_device
from seqserve.shared.nn.cells import CELLS
from seqserve.shared.nn.language_model import (
    LanguageModelConfig,
    RecurrentState,
    RNNLanguageModel,
    detach_state,
)
from seqserve.shared.text.vocab import Vocab

TASK = "generate"
PRIMARY_METRIC = "perplexity"  # dev perplexity; lower is better

_COMMON: dict[str, Any] = {
    "corpus": "ptb",
    "max_train_tokens": None,  # train on the first N tokens only (smoke runs); vocab stays full
    "cell": "lstm",
    "num_layers": 2,
    "tie_weights": True,
    "bptt": 35,
    "eval_batch_size": 10,
    "weight_decay": 0.0,
    "clip": 0.25,
    "schedule": "plateau",
    "lr_factor": 0.25,
    "lr_patience": 0,
    # Train forward passes under bfloat16 autocast (fp32 master weights, fp32 evaluation):
    # ~1.4x faster on CPUs with AMX/AVX512-BF16 and on recent GPUs.
    "autocast_bf16": False,
    # Wall-clock budget for the training epochs (0: none); full presets stop at the best
    # weights reached within about 90 minutes, however slow the machine.
    "time_budget_minutes": 0.0,
    # Evaluate and keep an exponential moving average of the weights (per step); 0: off.
    "ema_decay": 0.0,
    "seed": 1111,
}
PRESETS: dict[str, dict[str, Any]] = {
    # A 2x200 tied LSTM on the first 250k PTB training tokens (vocabulary from all of train):
    # 1-3 minutes on 2 CPU cores; dev perplexity ~390 (a smoke-test model, not a good one).
    "quick": _COMMON | {
        "max_train_tokens": 250_000,
        "embedding_dim": 200,
        "hidden_size": 200,
        "dropout": 0.2,
        "epochs": 2,
        "batch_size": 20,
        "lr": 1.5e-3,
        "patience": 2,
    },
    # Zaremba et al.'s "medium" (2x650, dropout 0.5) with tied weights: 12 epochs of Adam with
    # the LR decaying linearly towards 0, within a 90-minute budget. ~6.3 min per epoch with
    # bf16 autocast on an AVX512-BF16 EPYC's 2 cores (all 12 fit in 80 min: 92.9 test perplexity),
    # ~4.7 on an AMX Xeon, but ~27 min on one AVX2-only thread in float32 (no bf16 there),
    # where the budget stops it after 3 epochs at ~129. On a GPU the 12 epochs take minutes.
    # Adam above ~2e-3 made some runs drift (cell states growing without bound on long streams).
    "full": _COMMON | {
        "embedding_dim": 650,
        "hidden_size": 650,
        "dropout": 0.5,
        "epochs": 12,
        "schedule": "linear",
        "batch_size": 32,
        "lr": 2e-3,
        "patience": 3,
        "autocast_bf16": True,
        "time_budget_minutes": 90.0,
    },
}
_OPTIONAL_INT_KEYS = {"max_train_tokens"}
_ZERO_OK_INT_KEYS = {"seed", "lr_patience"}
_CHOICES: dict[str, set[str]] = {
    "corpus": set(CORPORA),
    "cell": set(CELLS),
    "schedule": {"plateau", "linear", "none"},
}


@dataclass(frozen=True)
class StreamBatch:
    inputs: Tensor  # [B, T] long
    targets: Tensor  # [B, T] long: inputs shifted one step ahead in the stream
    first: bool  # first window of a pass over the stream: start from a zero state

    def __len__(self) -> int:
        # Predicted tokens, so the loop's epoch loss is the per-token mean (log perplexity).
        return self.targets.numel()

    def to(self, device: torch.device) -> StreamBatch:
        return StreamBatch(self.inputs.to(device), self.targets.to(device), self.first)


def resolve_config(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset's settings with `overrides` applied; unknown names and bad values raise."""
    return apply_overrides(PRESETS, preset, overrides, _valid_override)


def _valid_override(key: str, value: Any, default: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _CHOICES:
        return value in _CHOICES[key]
    if key in _OPTIONAL_INT_KEYS:
        return value is None or (is_int and value > 1)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        return ok and (key != "dropout" or value < 1)
    if isinstance(default, int):
        return is_int and value >= (0 if key in _ZERO_OK_INT_KEYS else 1)
    return isinstance(value, type(default))


def train_language_model(
    data_dir: Path,
    out_path: Path,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train on the configured corpus, write the checkpoint to `out_path` and curve.png beside it."""
    cfg = resolve_config(preset, overrides)
    device = training_device(device)
    resolve_autocast(cfg, device)
    paths = [corpus_path(data_dir, cfg["corpus"], split) for split in SPLITS]
    data_fingerprint = fingerprint(paths)
    streams = read_corpus(data_dir, cfg["corpus"])
    vocab = build_vocab(streams["train"])
    train_ids = encode_stream(streams["train"], vocab)[: cfg["max_train_tokens"]]
    dev = batchify(encode_stream(streams["valid"], vocab), cfg["eval_batch_size"])
    test = batchify(encode_stream(streams["test"], vocab), cfg["eval_batch_size"])
    torch.manual_seed(cfg["seed"])  # weight initialisation; fit() reseeds for dropout
    model = RNNLanguageModel(_model_config(cfg, len(vocab)))
    batches = stream_batches(batchify(train_ids, cfg["batch_size"]), cfg["bptt"])
    evaluate = functools.partial(evaluate_stream, data=dev, bptt=cfg["bptt"], device=device)
    loss_fn = _CarriedState(cfg["autocast_bf16"]).loss
    loop_cfg = loop_config(cfg, progress, PRIMARY_METRIC, "min")
    result = fit(model, lambda: batches, evaluate, loss_fn, loop_cfg, device, on_epoch)
    metrics = evaluate(model)
    test_metrics = evaluate_stream(model, test, cfg["bptt"], device)
    metrics |= {f"test_{name}": value for name, value in test_metrics.items()}
    return save_trained(TASK, model, {"vocab": vocab.to_list()}, cfg, result, metrics, data_fingerprint, out_path,
                        PRIMARY_METRIC)


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """ids [N] -> [B, N // B]: row b is the b-th contiguous stretch of the stream.

    The last N mod B tokens are dropped, as in the standard setups.
    """
    columns = ids.numel() // batch_size
    if columns < 2:
        raise ValueError(f"a stream of {ids.numel()} tokens is too short for batch size {batch_size}")
    return ids[: columns * batch_size].view(batch_size, columns)


def stream_batches(data: Tensor, bptt: int) -> list[StreamBatch]:
    """Consecutive windows of `bptt` steps over data [B, L]; the last one may be shorter."""
    batches = []
    for start in range(0, data.size(1) - 1, bptt):
        steps = min(bptt, data.size(1) - 1 - start)
        window = data[:, start : start + steps + 1]  # [B, steps + 1]
        batches.append(StreamBatch(window[:, :-1], window[:, 1:], first=start == 0))
    return batches


class _CarriedState:
    """The loss function, holding the recurrent state between consecutive windows."""

    def __init__(self, autocast_bf16: bool) -> None:
        self.state: RecurrentState | None = None
        self.autocast_bf16 = autocast_bf16

    def loss(self, model: nn.Module, batch: StreamBatch) -> Tensor:
        if batch.first:
            self.state = None
        device_type = batch.inputs.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            logits, state = model(batch.inputs, self.state)  # [B, T, V]
        self.state = detach_state(state)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten())


def evaluate_stream(model: nn.Module, data: Tensor, bptt: int, device: torch.device) -> dict[str, float]:
    """Mean per-token cross-entropy "loss" (nats) and "perplexity" over data [B, L], state carried."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.inference_mode():
        for batch in stream_batches(data, bptt):
            batch = batch.to(device)
            logits, state = model(batch.inputs, state)
            total += F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum").item()
            count += batch.targets.numel()
    model.train(was_training)
    loss = total / count
    return {"perplexity": math.exp(loss), "loss": loss}


def _model_config(cfg: dict[str, Any], vocab_size: int) -> LanguageModelConfig:
    return LanguageModelConfig(
        cell=cfg["cell"],
        vocab_size=vocab_size,
        embedding_dim=cfg["embedding_dim"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_layers"],
        dropout=cfg["dropout"],
        tie_weights=cfg["tie_weights"],
        pad_id=Vocab.pad_id,
    )
