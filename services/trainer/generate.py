"""Train the word-level language model (task "generate") with truncated BPTT over a corpus stream.

The token stream is cut into `batch_size` contiguous columns; each training batch is the
next `bptt` steps of every column, and the recurrent state carries over from one window to
the next (detached, so gradients stop at the window edge) and restarts from zeros each epoch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqserve.services.trainer.common import Objective, TaskTrainer, TrainingSetup, resolve_autocast
from seqserve.services.trainer.corpora import (
    SPLITS,
    build_vocab,
    corpus_path,
    encode_stream,
    read_corpus,
)
from seqserve.services.trainer.outcome import TrainOutcome
from seqserve.shared import drift
from seqserve.shared.nn.evaluation import evaluating
from seqserve.shared.nn.language_model import (
    EOS,
    LanguageModelConfig,
    RecurrentState,
    RNNLanguageModel,
    detach_state,
)
from seqserve.shared.text.vocab import Vocab

OBJECTIVE = Objective("perplexity", "min")  # dev perplexity


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


def _train(run: TrainingSetup, data_dir: Path, out_path: Path) -> TrainOutcome:
    """A token stream -> a language model by truncated BPTT, selected on dev perplexity, scored on test."""
    cfg, device = run.cfg, run.device
    resolve_autocast(cfg, device)
    paths = [corpus_path(data_dir, cfg["corpus"], split) for split in SPLITS]
    data_fingerprint = run.fingerprint(paths)
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
    result = run.fit(model, lambda: batches, evaluate, loss_fn)
    metrics = evaluate(model)
    test_metrics = evaluate_stream(model, test, cfg["bptt"], device)
    metrics |= {f"test_{name}": value for name, value in test_metrics.items()}
    extras = {"vocab": vocab.to_list(), "drift_reference": _drift_reference(streams["valid"], vocab, metrics["loss"])}
    return run.save(model, extras, result, metrics, data_fingerprint, out_path)


def _drift_reference(dev_stream: list[str], vocab: Vocab, dev_loss: float) -> dict[str, Any]:
    """Dev lines (the stream cut at each "<eos>") as the handler reads text, a token known when
    it has a row of its own (the corpus's own "<unk>" encodes as <unk>), and as the prediction reference
    the dev mean per-token log-prob (the negated loss, "<eos>" steps included as `score` does)."""
    lines: list[str] = []
    line: list[str] = []
    for token in dev_stream:
        if token == EOS:
            lines.append(" ".join(line))
            line = []
        else:
            line.append(token)
    known = functools.partial(known_token, vocab)
    return drift.reference([text for text in lines if text], str.split, known, (), []) | {"mean_logprob": -dev_loss}


def known_token(vocab: Vocab, token: str) -> bool:
    return vocab.encode([token])[0] not in (vocab.pad_id, vocab.unk_id)


train_language_model = TaskTrainer("generate", OBJECTIVE, _train)


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
    total, count, state = 0.0, 0, None
    with evaluating(model):
        for batch in stream_batches(data, bptt):
            batch = batch.to(device)
            logits, state = model(batch.inputs, state)
            total += F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum").item()
            count += batch.targets.numel()
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
