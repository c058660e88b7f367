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

from seqserve.services.trainer.batching import drop_words, length_grouped_epoch, mix_feedback, seeded_subset
from seqserve.services.trainer.common import Objective, TaskTrainer, TrainingSetup
from seqserve.services.trainer.conllu import Sentence, read_conllu
from seqserve.services.trainer.outcome import TrainOutcome
from seqserve.services.trainer.pretrained import initialise_embedding
from seqserve.shared import drift
from seqserve.shared.nn.embeddings import load_pretrained_embeddings
from seqserve.shared.nn.evaluation import accuracy, evaluating
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

OBJECTIVE = Objective("accuracy", "max")  # dev token accuracy


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


def _train(run: TrainingSetup, data_dir: Path, out_path: Path) -> TrainOutcome:
    """CoNLL-U sentences -> a word+char tagger, selected on dev token accuracy, scored on test."""
    cfg, device = run.cfg, run.device
    paths = [data_dir / cfg[key] for key in ("train_file", "dev_file", "test_file")]
    embeddings_path = _embeddings_path(data_dir, cfg)
    feedback_path = data_dir / cfg["feedback_file"] if cfg["feedback_file"] else None
    extra_paths = [path for path in (embeddings_path, feedback_path) if path is not None]
    data_fingerprint = run.fingerprint(paths + extra_paths)
    train, dev, test = (read_conllu(path, cfg["column"]) for path in paths)
    # Corrections carry the model's own tags in the UPOS column, whichever column it learnt.
    feedback = mix_feedback(read_conllu(feedback_path, "upos"), cfg) if feedback_path else []
    # Every split's tags get an id, so a rare tag missing from a training slice (or from train
    # altogether) scores as an error instead of crashing the evaluation.
    tags = sorted({tag for split in (train, dev, test, feedback) for _, tag_list in split for tag in tag_list})
    train = seeded_subset(train, cfg["max_train_examples"], cfg["seed"]) + feedback
    encoder = _build_encoder(train, cfg)
    dev_batches = _eval_batches(dev, encoder, tags, cfg)
    evaluate_dev = functools.partial(evaluate_batches, batches=dev_batches, device=device)
    torch.manual_seed(cfg["seed"])  # weight initialisation; fit() reseeds for dropout
    model = SequenceTagger(_model_config(cfg, encoder, len(tags)))
    found = _init_embeddings(model, embeddings_path, encoder.words, cfg)
    lineage = initialise_embedding(model.embedding, encoder.words, cfg)  # records cfg["pretrained_version"]
    batches = _train_batches(_encode(train, encoder, tags), cfg, encoder.words.unk_id)
    result = run.fit(model, batches, evaluate_dev, _loss)
    test_metrics = evaluate_batches(model, _eval_batches(test, encoder, tags, cfg), device)
    metrics = dict(result.best_metrics) | {f"test_{k}": v for k, v in test_metrics.items()}
    metrics |= {k: float(v) for k, v in lineage.items() if k != "pretrained_version"}
    extras = {**encoder.to_payload(), "tags": list(tags),  # vocab, char_vocab, lowercase_words, max_word_chars
              "drift_reference": _drift_reference(dev, encoder, tags, model, dev_batches, device)}
    run_info = {"pretrained_found": found, **lineage}
    return run.save(model, extras, result, metrics, data_fingerprint, out_path, run_info=run_info)


def _drift_reference(dev: list[Sentence], encoder: TokenEncoder, tags: list[str], model: nn.Module,
                     batches: list[TagBatch], device: torch.device) -> dict[str, Any]:
    """Dev sentences as the handler reads them (tokens joined by spaces, a token known when
    its form or lower case has a row) and the shares of the tags the trained model predicts."""
    with evaluating(model):
        predicted = [tags[i] for batch in batches for i in _predicted_ids(model, batch.to(device))]
    texts = [" ".join(words) for words, _ in dev]
    return drift.reference(texts, str.split, functools.partial(known_word, encoder.words), predicted, tags)


def known_word(vocab: Vocab, token: str) -> bool:
    return any(vocab.encode([form])[0] not in (vocab.pad_id, vocab.unk_id) for form in (token, token.lower()))


def _predicted_ids(model: nn.Module, batch: TagBatch) -> list[int]:
    logits = model(batch.words, batch.chars, batch.lengths)  # [B, T, K]
    real = token_mask(batch.lengths, batch.words.size(1)).to(logits.device)  # [B, T]
    return logits[real].argmax(-1).tolist()


train_tagger = TaskTrainer("tag", OBJECTIVE, _train)


def _embeddings_path(data_dir: Path, cfg: dict[str, Any]) -> Path | None:
    if cfg["pretrained_embeddings"] is None:
        return None
    return data_dir / cfg["pretrained_embeddings"]  # an absolute path stays absolute


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

    def epoch() -> list[TagBatch]:
        groups = length_grouped_epoch(len(rows), size, lambda i: len(rows[i][0]), rng)
        return [
            make_batch([(drop_words(rows[i][0], word_dropout, rng, unk_id), rows[i][1], rows[i][2]) for i in group])
            for group in groups
        ]

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
    preds, golds, loss_sum = [], [], 0.0
    with evaluating(model):
        for batch in batches:
            batch = batch.to(device)
            logits = model(batch.words, batch.chars, batch.lengths)  # [B, T, K]
            real = token_mask(batch.lengths, batch.words.size(1)).to(device)  # [B, T]
            loss_sum += F.cross_entropy(logits[real], batch.tags[real], reduction="sum").item()
            preds.append(logits[real].argmax(-1).cpu())
            golds.append(batch.tags[real].cpu())
    p, g = torch.cat(preds), torch.cat(golds)
    return {"accuracy": accuracy(p, g), "loss": loss_sum / len(g)}
