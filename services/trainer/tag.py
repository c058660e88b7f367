"""Train the sequence tagger (UD English EWT UPOS by default) and write a self-describing checkpoint."""

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

from seqserve.services.trainer.conllu import COLUMNS, Sentence, read_conllu
from seqserve.services.trainer.datasets import fingerprint
from seqserve.services.trainer.loop import fit
from seqserve.services.trainer.outcome import TrainOutcome, save_trained
from seqserve.services.trainer.presets import apply_overrides, loop_config, training_device
from seqserve.shared.nn.cells import CELLS
from seqserve.shared.nn.embeddings import load_pretrained_embeddings
from seqserve.shared.nn.evaluation import accuracy
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.tagger import (
    SequenceTagger,
    TaggerConfig,
    TokenEncoder,
    pad_characters,
    tagging_loss,
    token_mask,
)
from seqserve.shared.text.vocab import Vocab

PRIMARY_METRIC = "accuracy"  # dev token accuracy

_COMMON: dict[str, Any] = {
    "train_file": "ud_english_ewt/en_ewt-ud-train.conllu.gz",
    "dev_file": "ud_english_ewt/en_ewt-ud-dev.conllu.gz",
    "test_file": "ud_english_ewt/en_ewt-ud-test.conllu.gz",
    "column": "upos",  # a CoNLL-U column name, or a 0-based index for plain CoNLL files
    "max_train_examples": None,  # a seeded random subset of training sentences
    "min_freq": 1,
    "max_vocab_size": None,
    "lowercase_words": True,
    "max_word_chars": 30,
    "word_dropout": 0.05,  # chance a training word id becomes <unk>, so <unk> gets trained
    "pretrained_embeddings": None,  # text-format vectors, relative to data_dir unless absolute
    "cell": "lstm",
    "bidirectional": True,
    "weight_decay": 0.0,
    "clip": 5.0,
    "schedule": "plateau",
    "lr_factor": 0.5,
    "lr_patience": 1,
    "eval_batch_size": 256,
    # Wall-clock budget for the training epochs (0: none); full presets stop at the best
    # weights reached within about 90 minutes, however slow the machine.
    "time_budget_minutes": 0.0,
    # Evaluate and keep an exponential moving average of the weights (per step); 0: off.
    "ema_decay": 0.0,
    "seed": 13,
}
PRESETS: dict[str, dict[str, Any]] = {
    # A 3,000-sentence slice and a small model: a couple of minutes on 2 CPU cores.
    "quick": _COMMON | {
        "max_train_examples": 3000,
        "embedding_dim": 64,
        "char_embedding_dim": 32,
        "char_hidden_size": 32,
        "hidden_size": 128,
        "num_layers": 1,
        "dropout": 0.33,
        "epochs": 5,
        "batch_size": 32,
        "lr": 5e-3,  # a small model on few steps: a high rate gets furthest in the time
        "patience": 2,
    },
    # Word + char BiLSTM in the style of Plank et al. (2016) and Qi et al. (2018), sized for
    # a CPU: 2 x 256 BiLSTM layers, dropout 0.33, Adam 2e-3 halved when dev stalls.
    "full": _COMMON | {
        "embedding_dim": 100,
        "char_embedding_dim": 50,
        "char_hidden_size": 100,
        "hidden_size": 256,
        "num_layers": 2,
        "dropout": 0.33,
        "epochs": 20,
        "batch_size": 32,
        "lr": 2e-3,
        "patience": 4,
        "time_budget_minutes": 90.0,
    },
}
_OPTIONAL_INT_KEYS = {"max_train_examples", "max_vocab_size"}
_ZERO_OK_INT_KEYS = {"seed", "lr_patience", "char_hidden_size"}
_CHOICES: dict[str, tuple[Any, ...]] = {"cell": tuple(CELLS), "schedule": ("plateau", "linear", "none")}


@dataclass(frozen=True)
class TagBatch:
    words: Tensor  # [B, T] long
    chars: Tensor  # [B, T, C] long
    lengths: Tensor  # [B] long, CPU
    tags: Tensor  # [B, T] long; padding positions hold 0 and are masked by `lengths`

    def __len__(self) -> int:
        return self.lengths.numel()

    def to(self, device: torch.device) -> TagBatch:
        return TagBatch(self.words.to(device), self.chars.to(device), self.lengths, self.tags.to(device))


Row = tuple[list[int], list[list[int]], list[int]]  # word ids, char ids per word, tag ids


def resolve_config(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset's settings with `overrides` applied; unknown names and bad values raise."""
    return apply_overrides(PRESETS, preset, overrides, _valid)


def _valid(key: str, value: Any, default: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _CHOICES:
        return value in _CHOICES[key]
    if key == "column":
        return value in COLUMNS or (is_int and value >= 0)
    if key == "pretrained_embeddings":
        return value is None or (isinstance(value, str) and bool(value))
    if key in _OPTIONAL_INT_KEYS:
        return value is None or (is_int and value > 0)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and 0 <= value < (1 if key in ("dropout", "word_dropout") else float("inf"))
    if isinstance(default, int):
        return (
            is_int
            and value >= (0 if key in _ZERO_OK_INT_KEYS else 1)
            and (key != "max_word_chars" or value >= 2)
        )
    return isinstance(value, str) and bool(value)


def train_tagger(
    data_dir: Path,
    out_path: Path,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train on `data_dir`, write the checkpoint to `out_path` and curve.png beside it."""
    cfg = resolve_config(preset, overrides)
    device = training_device(device)
    paths = [Path(data_dir) / cfg[key] for key in ("train_file", "dev_file", "test_file")]
    embeddings_path = _embeddings_path(data_dir, cfg)
    data_fingerprint = fingerprint(paths + ([embeddings_path] if embeddings_path else []))
    train, dev, test = (read_conllu(path, cfg["column"]) for path in paths)
    # Every split's tags get an id, so a rare tag missing from a training slice (or from train
    # altogether) scores as an error instead of crashing the evaluation.
    tags = sorted({tag for split in (train, dev, test) for _, tag_list in split for tag in tag_list})
    train = _subset(train, cfg)
    encoder = _build_encoder(train, cfg)
    evaluate_dev = functools.partial(
        evaluate_batches, batches=_eval_batches(dev, encoder, tags, cfg), device=device
    )
    torch.manual_seed(cfg["seed"])  # weight initialisation; fit() reseeds for dropout
    model = SequenceTagger(_model_config(cfg, encoder, len(tags)))
    found = _init_embeddings(model, embeddings_path, encoder.words, cfg)
    batches = _train_batches(_encode(train, encoder, tags), cfg, encoder.words.unk_id)
    result = fit(model, batches, evaluate_dev, _loss, loop_config(cfg, progress, PRIMARY_METRIC, "max"), device, on_epoch)
    test_metrics = evaluate_batches(model, _eval_batches(test, encoder, tags, cfg), device)
    metrics = dict(result.best_metrics) | {f"test_{k}": v for k, v in test_metrics.items()}
    extras = {**encoder.to_payload(), "tags": list(tags)}  # vocab, char_vocab, lowercase_words, max_word_chars
    return save_trained("tag", model, extras, cfg, result, metrics, data_fingerprint, out_path, PRIMARY_METRIC,
                        run_info={"pretrained_found": found})


def _embeddings_path(data_dir: Path, cfg: dict[str, Any]) -> Path | None:
    if cfg["pretrained_embeddings"] is None:
        return None
    return Path(data_dir) / cfg["pretrained_embeddings"]  # an absolute path stays absolute


def _subset(sentences: list[Sentence], cfg: dict[str, Any]) -> list[Sentence]:
    limit = cfg["max_train_examples"]
    if limit is None or limit >= len(sentences):
        return sentences
    return random.Random(cfg["seed"]).sample(sentences, limit)


def _build_encoder(train: list[Sentence], cfg: dict[str, Any]) -> TokenEncoder:
    forms = [[f.lower() for f in words] if cfg["lowercase_words"] else words for words, _ in train]
    words = Vocab.build(forms, cfg["min_freq"], cfg["max_vocab_size"])
    chars = Vocab.build(list(word) for sentence, _ in train for word in sentence)
    return TokenEncoder(words, chars, cfg["lowercase_words"], cfg["max_word_chars"])


def _encode(sentences: list[Sentence], encoder: TokenEncoder, tags: list[str]) -> list[Row]:
    tag_ids = {tag: index for index, tag in enumerate(tags)}
    rows = []
    for words, sentence_tags in sentences:
        word_ids, char_ids = encoder.encode(words)
        rows.append((word_ids, char_ids, [tag_ids[tag] for tag in sentence_tags]))
    return rows


def _model_config(cfg: dict[str, Any], encoder: TokenEncoder, num_tags: int) -> TaggerConfig:
    return TaggerConfig(
        cell=cfg["cell"],
        vocab_size=len(encoder.words),
        num_tags=num_tags,
        embedding_dim=cfg["embedding_dim"],
        char_vocab_size=len(encoder.chars),
        char_embedding_dim=cfg["char_embedding_dim"],
        char_hidden_size=cfg["char_hidden_size"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_layers"],
        bidirectional=cfg["bidirectional"],
        dropout=cfg["dropout"],
        pad_id=Vocab.pad_id,
        char_pad_id=Vocab.pad_id,
    )


def _init_embeddings(model: SequenceTagger, path: Path | None, vocab: Vocab, cfg: dict[str, Any]) -> int:
    """Copy pretrained vectors into the word embedding; returns how many words they covered."""
    if path is None:
        return 0
    matrix, found = load_pretrained_embeddings(path, vocab, cfg["embedding_dim"])
    with torch.no_grad():
        model.embedding.weight.copy_(matrix)
    return found


def make_batch(rows: list[Row], pad_id: int = Vocab.pad_id) -> TagBatch:
    """Pad words, chars and tags of `rows` (word, char and tag padding all use `pad_id`)."""
    words, lengths = pad_sequences([word_ids for word_ids, _, _ in rows], pad_id)
    chars = pad_characters([char_ids for _, char_ids, _ in rows], pad_id)
    tags, _ = pad_sequences([tag_ids for _, _, tag_ids in rows], pad_id)
    return TagBatch(words, chars, lengths, tags)


def _train_batches(rows: list[Row], cfg: dict[str, Any], unk_id: int) -> Callable[[], list[TagBatch]]:
    """A fresh shuffled epoch per call. Batches group similar lengths to cut padding work."""
    rng = random.Random(cfg["seed"])
    size, word_dropout = cfg["batch_size"], cfg["word_dropout"]

    def drop(row: Row) -> Row:
        if word_dropout <= 0:
            return row
        return [unk_id if rng.random() < word_dropout else i for i in row[0]], row[1], row[2]

    def epoch() -> list[TagBatch]:
        order = rng.sample(range(len(rows)), len(rows))
        pool = size * 50  # sort within pools, not globally, so batches still vary between epochs
        groups = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: len(rows[i][0]))
            groups += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(groups)
        return [make_batch([drop(rows[i]) for i in group]) for group in groups]

    return epoch


def _eval_batches(
    sentences: list[Sentence], encoder: TokenEncoder, tags: list[str], cfg: dict[str, Any]
) -> list[TagBatch]:
    rows, size = (
        sorted(_encode(sentences, encoder, tags), key=lambda r: len(r[0])),
        cfg["eval_batch_size"],
    )
    return [make_batch(rows[i : i + size]) for i in range(0, len(rows), size)]


def _loss(model: nn.Module, batch: TagBatch) -> Tensor:
    return tagging_loss(model(batch.words, batch.chars, batch.lengths), batch.tags, batch.lengths)


def evaluate_batches(
    model: nn.Module, batches: list[TagBatch], device: torch.device
) -> dict[str, float]:
    """Token "accuracy" and mean per-token cross-entropy "loss" of `model` over `batches`."""
    was_training = model.training
    model.eval()
    preds, golds, loss_sum = [], [], 0.0
    with torch.inference_mode():
        for batch in batches:
            batch = batch.to(device)
            logits = model(batch.words, batch.chars, batch.lengths)  # [B, T, K]
            real = token_mask(batch.lengths, batch.words.size(1)).to(device)  # [B, T]
            loss_sum += F.cross_entropy(logits[real], batch.tags[real], reduction="sum").item()
            preds.append(logits[real].argmax(-1).cpu())
            golds.append(batch.tags[real].cpu())
    model.train(was_training)
    p, g = torch.cat(preds), torch.cat(golds)
    return {"accuracy": accuracy(p, g), "loss": loss_sum / len(g)}
