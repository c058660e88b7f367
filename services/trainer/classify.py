"""Train the SST-2 sentence classifier and write a self-describing checkpoint beside its curve."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqserve.services.trainer.batching import drop_words, length_grouped_epoch, mix_feedback, seeded_subset
from seqserve.services.trainer.common import Objective, TaskTrainer, TrainingSetup
from seqserve.services.trainer.datasets import Example, read_sst2
from seqserve.services.trainer.outcome import TrainOutcome
from seqserve.services.trainer.pretrained import initialise_embedding
from seqserve.shared import drift
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier
from seqserve.shared.nn.evaluation import accuracy, evaluating, macro_f1
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab

LABELS = ["negative", "positive"]  # SST-2 label ids 0 and 1
OBJECTIVE = Objective("accuracy", "max")


@dataclass(frozen=True)
class ClassifyBatch:
    tokens: Tensor  # [B, T] long
    lengths: Tensor  # [B] long, CPU
    labels: Tensor  # [B] long

    def __len__(self) -> int:
        return self.labels.numel()

    def to(self, device: torch.device) -> ClassifyBatch:
        return ClassifyBatch(self.tokens.to(device), self.lengths, self.labels.to(device))


def _train(run: TrainingSetup, data_dir: Path, out_path: Path) -> TrainOutcome:
    """SST-2 sentences -> a sentence classifier, trained on cross-entropy, selected on dev accuracy."""
    cfg, device = run.cfg, run.device
    train_path, dev_path = data_dir / cfg["train_file"], data_dir / cfg["dev_file"]
    feedback_path = data_dir / cfg["feedback_file"] if cfg["feedback_file"] else None
    data_fingerprint = run.fingerprint([train_path, dev_path, *([feedback_path] if feedback_path else [])])
    examples = seeded_subset(read_sst2(train_path), cfg["max_train_examples"], cfg["seed"])
    train = _tokenized(examples + feedback_examples(feedback_path, cfg))
    vocab = Vocab.build((tokens for tokens, _ in train), cfg["min_freq"], cfg["max_vocab_size"])
    dev = read_sst2(dev_path)
    dev_batches = _eval_batches(_encode(_tokenized(dev), vocab), cfg, vocab.pad_id)
    evaluate = functools.partial(evaluate_batches, batches=dev_batches, device=device)
    torch.manual_seed(cfg["seed"])  # weight initialisation; fit() reseeds for dropout
    model = SentenceClassifier(_model_config(cfg, len(vocab)))
    lineage = initialise_embedding(model.embedding, vocab, cfg)  # records cfg["pretrained_version"]
    batches = _train_batches(_encode(train, vocab), cfg, vocab)
    result = run.fit(model, batches, evaluate, _loss)
    extras = {"vocab": vocab.to_list(), "labels": list(LABELS),
              "drift_reference": _drift_reference([sentence for sentence, _ in dev], vocab, model, dev_batches, device)}
    metrics = evaluate(model) | _coverage(lineage)
    return run.save(model, extras, result, metrics, data_fingerprint, out_path, run_info=lineage)


def feedback_examples(path: Path | None, cfg: dict[str, Any]) -> list[Example]:
    return mix_feedback(read_sst2(path), cfg) if path is not None else []


def _drift_reference(texts: list[str], vocab: Vocab, model: nn.Module, batches: list[ClassifyBatch],
                     device: torch.device) -> dict[str, Any]:
    """Dev inputs as the handler reads them (the shared tokenizer, this vocabulary) and the
    shares of the labels the trained model predicts on them."""
    with evaluating(model):
        predicted = [LABELS[i] for batch in batches
                     for i in model(batch.tokens.to(device), batch.lengths).argmax(-1).tolist()]
    return drift.reference(texts, tokenize, lambda token: vocab.encode([token])[0] != vocab.unk_id, predicted, LABELS)


def _coverage(lineage: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in lineage.items() if k != "pretrained_version"}


train_classifier = TaskTrainer("classify", OBJECTIVE, _train)


def _tokenized(examples: list[Example]) -> list[tuple[list[str], int]]:
    return [(tokenize(sentence), label) for sentence, label in examples]


def _encode(examples: list[tuple[list[str], int]], vocab: Vocab) -> list[tuple[list[int], int]]:
    # Validated data never tokenizes to nothing, but <unk> keeps packing legal if it did.
    return [(vocab.encode(tokens) or [vocab.unk_id], label) for tokens, label in examples]


def _model_config(cfg: dict[str, Any], vocab_size: int) -> ClassifierConfig:
    return ClassifierConfig(
        cell=cfg["cell"],
        vocab_size=vocab_size,
        num_classes=len(LABELS),
        embedding_dim=cfg["embedding_dim"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_layers"],
        bidirectional=cfg["bidirectional"],
        dropout=cfg["dropout"],
        pad_id=Vocab.pad_id,
    )


def _make_batch(rows: list[tuple[list[int], int]], pad_id: int) -> ClassifyBatch:
    tokens, lengths = pad_sequences([ids for ids, _ in rows], pad_id)
    return ClassifyBatch(tokens, lengths, torch.tensor([label for _, label in rows], dtype=torch.long))


def _train_batches(
    rows: list[tuple[list[int], int]], cfg: dict[str, Any], vocab: Vocab
) -> Callable[[], list[ClassifyBatch]]:
    """A fresh shuffled epoch per call. Batches group similar lengths to cut padding work."""
    rng = random.Random(cfg["seed"])
    size, word_dropout = cfg["batch_size"], cfg["word_dropout"]

    def epoch() -> list[ClassifyBatch]:
        groups = length_grouped_epoch(len(rows), size, lambda i: len(rows[i][0]), rng)
        return [
            _make_batch([(drop_words(rows[i][0], word_dropout, rng, vocab.unk_id), rows[i][1]) for i in group],
                        vocab.pad_id)
            for group in groups
        ]

    return epoch


def _eval_batches(
    rows: list[tuple[list[int], int]], cfg: dict[str, Any], pad_id: int
) -> list[ClassifyBatch]:
    ordered, size = sorted(rows, key=lambda r: len(r[0])), cfg["eval_batch_size"]
    return [_make_batch(ordered[i : i + size], pad_id) for i in range(0, len(ordered), size)]


def _loss(model: nn.Module, batch: ClassifyBatch) -> Tensor:
    return F.cross_entropy(model(batch.tokens, batch.lengths), batch.labels)


def evaluate_batches(
    model: nn.Module, batches: list[ClassifyBatch], device: torch.device
) -> dict[str, float]:
    """Dev "accuracy", "macro_f1" and mean cross-entropy "loss" of `model` over `batches`."""
    preds, golds, loss_sum = [], [], 0.0
    with evaluating(model):
        for batch in batches:
            batch = batch.to(device)
            logits = model(batch.tokens, batch.lengths)  # [B, C]
            loss_sum += F.cross_entropy(logits, batch.labels, reduction="sum").item()
            preds.append(logits.argmax(-1).cpu())
            golds.append(batch.labels.cpu())
    p, g = torch.cat(preds), torch.cat(golds)
    return {"accuracy": accuracy(p, g), "macro_f1": macro_f1(p, g, len(LABELS)), "loss": loss_sum / len(g)}
