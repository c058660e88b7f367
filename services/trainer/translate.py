"""Train the Multi30k English->German translator and write a self-describing checkpoint.

Model selection uses dev ("val") BLEU from greedy decoding, cheap enough for every epoch; the
saved weights are then scored once on test_2016_flickr with beam search ("test_bleu").
"""

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

from seqserve.services.trainer.batching import length_grouped_epoch, mix_feedback, seeded_subset
from seqserve.services.trainer.common import Objective, TaskTrainer, TrainingSetup
from seqserve.services.trainer.outcome import TrainOutcome
from seqserve.services.trainer.parallel import Pair, read_pair_lines, read_parallel
from seqserve.shared import drift
from seqserve.shared.nn.decoding import beam_search, greedy_decode
from seqserve.shared.nn.evaluation import evaluating
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from seqserve.shared.text.vocab import PAD, UNK, Vocab
from seqserve.shared.training.data_files import TRANSLATE_FILE_PATTERN

OBJECTIVE = Objective("bleu", "max")
BOS, EOS = "<s>", "</s>"
BOS_ID, EOS_ID = 2, 3  # in every target vocabulary, right after <pad> and <unk>
FILE_PATTERN = TRANSLATE_FILE_PATTERN

@dataclass(frozen=True)
class TranslateBatch:
    src: Tensor  # [B, S] long
    src_lengths: Tensor  # [B] long, CPU
    tgt_in: Tensor  # [B, T] long: bos + target
    tgt_out: Tensor  # [B, T] long: target + eos, pad where tgt_in is pad

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device: torch.device) -> TranslateBatch:
        return TranslateBatch(self.src.to(device), self.src_lengths, self.tgt_in.to(device), self.tgt_out.to(device))


def _train(run: TrainingSetup, data_dir: Path, out_path: Path) -> TrainOutcome:
    """Parallel text -> an attentional seq2seq, selected on dev greedy BLEU, scored on test beam BLEU."""
    cfg, device = run.cfg, run.device
    paths = {split: _split_paths(data_dir, cfg, split) for split in ("train", "dev", "test")}
    feedback_path = data_dir / cfg["feedback_file"] if cfg["feedback_file"] else None
    data_fingerprint = run.fingerprint([p for pair in paths.values() for p in pair] + ([feedback_path] if feedback_path else []))
    train = seeded_subset(read_parallel(*paths["train"]), cfg["max_train_examples"], cfg["seed"])
    train += mix_feedback(read_pair_lines(feedback_path), cfg) if feedback_path else []
    src_vocab = Vocab.build((s for s, _ in train), cfg["min_freq"], cfg["max_vocab_size"])
    tgt_vocab = target_vocab((t for _, t in train), cfg["min_freq"], cfg["max_vocab_size"])
    dev_pairs = read_parallel(*paths["dev"])
    dev = _EvalSet.build(dev_pairs, src_vocab, tgt_vocab, cfg["eval_batch_size"])
    test = _EvalSet.build(read_parallel(*paths["test"]), src_vocab, tgt_vocab, cfg["eval_batch_size"])
    evaluate = functools.partial(evaluate_dev, data=dev, cfg=cfg, device=device)
    torch.manual_seed(cfg["seed"])  # weight initialisation; fit() reseeds for dropout
    model = Seq2Seq(_model_config(cfg, len(src_vocab), len(tgt_vocab)))
    batches = _train_batches(_encode(train, src_vocab, tgt_vocab), cfg)
    loss_fn = functools.partial(sequence_loss, label_smoothing=cfg["label_smoothing"])
    result = run.fit(model, batches, evaluate, loss_fn)
    # fit() restored the best epoch's weights; its dev metrics are those weights' metrics.
    metrics = result.best_metrics | {"test_bleu": test_bleu(model, test, cfg, device)}
    extras = {"src_vocab": src_vocab.to_list(), "tgt_vocab": tgt_vocab.to_list(),
              "drift_reference": _drift_reference(model, dev_pairs, dev, src_vocab, cfg, device)}
    return run.save(model, extras, result, metrics, data_fingerprint, out_path)


def _drift_reference(model: Seq2Seq, pairs: list[Pair], dev: _EvalSet, src_vocab: Vocab, cfg: dict[str, Any],
                     device: torch.device) -> dict[str, Any]:
    """The source side of dev as the handler reads it, and as the prediction profile the
    output/source length ratio of greedy translations (drift.ratio_bucket): no label set."""
    ratios = []
    with evaluating(model):
        for batch in dev.batches:
            batch = batch.to(device)
            outputs = greedy_decode(model, batch.src, batch.src_lengths, cfg["max_decode_len"])
            ratios += [drift.ratio_bucket(len(ids), int(n)) for ids, n in zip(outputs, batch.src_lengths, strict=True)]
    known = functools.partial(known_source, src_vocab)
    return drift.reference([" ".join(source) for source, _ in pairs], str.split, known, ratios, [])


def known_source(vocab: Vocab, token: str) -> bool:
    return vocab.encode([token])[0] != vocab.unk_id


train_translator = TaskTrainer("translate", OBJECTIVE, _train)


def _split_paths(data_dir: Path, cfg: dict[str, Any], split: str) -> tuple[Path, Path]:
    name = cfg[f"{split}_split"]
    folder = data_dir / cfg["corpus"]
    return (
        folder / FILE_PATTERN.format(split=name, lang=cfg["src_lang"]),
        folder / FILE_PATTERN.format(split=name, lang=cfg["tgt_lang"]),
    )


def target_vocab(token_lists: Any, min_freq: int, max_size: int | None) -> Vocab:
    """Like Vocab.build, with BOS and EOS at BOS_ID and EOS_ID (counted within max_size)."""
    base = Vocab.build(token_lists, min_freq, None if max_size is None else max(max_size - 2, 2))
    return Vocab([PAD, UNK, BOS, EOS, *(t for t in base.to_list()[2:] if t not in (BOS, EOS))])


Encoded = tuple[list[int], list[int]]  # source ids, target ids (no bos/eos)


def _encode(pairs: list[Pair], src_vocab: Vocab, tgt_vocab: Vocab) -> list[Encoded]:
    return [(src_vocab.encode(s), tgt_vocab.encode(t)) for s, t in pairs]


def _make_batch(rows: list[Encoded]) -> TranslateBatch:
    pad = Vocab.pad_id
    src, src_lengths = pad_sequences([s for s, _ in rows], pad)
    tgt_in, _ = pad_sequences([[BOS_ID, *t] for _, t in rows], pad)
    tgt_out, _ = pad_sequences([[*t, EOS_ID] for _, t in rows], pad)
    return TranslateBatch(src, src_lengths, tgt_in, tgt_out)


def _train_batches(rows: list[Encoded], cfg: dict[str, Any]) -> Callable[[], list[TranslateBatch]]:
    """A fresh shuffled epoch per call. Batches group similar lengths to cut padding work."""
    rng = random.Random(cfg["seed"])
    size = cfg["batch_size"]

    def epoch() -> list[TranslateBatch]:
        groups = length_grouped_epoch(len(rows), size, lambda i: (len(rows[i][0]), len(rows[i][1])), rng)
        return [_make_batch([rows[i] for i in group]) for group in groups]

    return epoch


def sequence_loss(model: nn.Module, batch: TranslateBatch, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy averaged over the real (non-pad) target steps of the batch."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)  # [B, T, V]
    return F.cross_entropy(
        logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=Vocab.pad_id, label_smoothing=label_smoothing
    )


@dataclass(frozen=True)
class _EvalSet:
    batches: list[TranslateBatch]  # sorted by source length
    references: list[str]  # target text of each batch row, in batch order
    tgt_vocab: Vocab

    @classmethod
    def build(cls, pairs: list[Pair], src_vocab: Vocab, tgt_vocab: Vocab, size: int) -> _EvalSet:
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
        rows = _encode([pairs[i] for i in order], src_vocab, tgt_vocab)
        batches = [_make_batch(rows[i : i + size]) for i in range(0, len(rows), size)]
        # References keep the original words: an <unk> in the hypothesis must not match them.
        return cls(batches, [" ".join(pairs[i][1]) for i in order], tgt_vocab)


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) of already-tokenized text.

    tokenize="none": Multi30k's tok/ files are lowercased and Moses-tokenized, and this
    lowercased tokenized variant is what published Multi30k baselines report.
    """
    # Imported here: the training service imports every trainer module, and only BLEU needs it.
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none", force=True).score


def evaluate_dev(model: Seq2Seq, data: _EvalSet, cfg: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Dev "bleu" (greedy decoding) and teacher-forced per-token cross-entropy "loss"."""
    hypotheses, loss_sum, tokens = [], 0.0, 0
    with evaluating(model):
        for batch in data.batches:
            batch = batch.to(device)
            n = int((batch.tgt_out != Vocab.pad_id).sum())
            loss_sum += sequence_loss(model, batch).item() * n
            tokens += n
            for ids in greedy_decode(model, batch.src, batch.src_lengths, cfg["max_decode_len"]):
                hypotheses.append(" ".join(data.tgt_vocab.decode(ids)))
    return {"bleu": corpus_bleu(hypotheses, data.references), "loss": loss_sum / tokens}


def test_bleu(model: Seq2Seq, data: _EvalSet, cfg: dict[str, Any], device: torch.device) -> float:
    """BLEU of beam-search translations of `data`."""
    hypotheses = []
    for batch in data.batches:
        batch = batch.to(device)
        for ids in beam_search(
            model, batch.src, batch.src_lengths, cfg["beam_size"], cfg["max_decode_len"], cfg["length_penalty"]
        ):
            hypotheses.append(" ".join(data.tgt_vocab.decode(ids)))
    return corpus_bleu(hypotheses, data.references)


def _model_config(cfg: dict[str, Any], src_size: int, tgt_size: int) -> Seq2SeqConfig:
    return Seq2SeqConfig(
        src_vocab_size=src_size,
        tgt_vocab_size=tgt_size,
        cell=cfg["cell"],
        src_embedding_dim=cfg["src_embedding_dim"],
        tgt_embedding_dim=cfg["tgt_embedding_dim"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_layers"],
        bidirectional=cfg["bidirectional"],
        dropout=cfg["dropout"],
        attention=cfg["attention"],
        tie_embeddings=cfg["tie_embeddings"],
        pad_id=Vocab.pad_id,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
    )
