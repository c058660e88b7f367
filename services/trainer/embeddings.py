"""Train word vectors (gensim fastText or word2vec) on unlabelled text and write a seqserve
checkpoint: vocabulary, vectors and fastText's n-gram bucket matrix as tensors, so the worker
serves them (OOV words included) with torch alone.

Text: the training splits of WikiText-2 and PTB (~2.05M + ~0.89M words), the unlabelled
corpora here; the other corpora's text sides are small and labelled data of the tasks these
vectors are meant to help, so they stay out (the benchmark would otherwise see dev-like text).
Tokens are lowercased, as the classifier's tokenizer and the tagger's word vocabulary are;
the corpora's markers (`<unk>`, PTB's `N`, WikiText's `@-@` splitters, `=` headings) are dropped.

Evaluation: gensim ships WordSim-353 and SimLex-999 in its test data; Spearman's rho on
WordSim-353 (pairs with both words in the vocabulary) is the primary, higher-is-better metric
the promotion gate compares. The probe words' nearest neighbours go into the metrics too.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gensim.models import FastText, Word2Vec
from gensim.models.callbacks import CallbackAny2Vec
from gensim.models.keyedvectors import KeyedVectors
from gensim.test.utils import datapath

from seqserve.services.trainer.common import Objective, TaskTrainer, TrainingSetup
from seqserve.services.trainer.corpora import corpus_path
from seqserve.services.trainer.outcome import TrainOutcome
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from seqserve.shared.nn.word_vectors import WordVectors, WordVectorsConfig
from seqserve.shared.text.vocab import PAD, UNK
from seqserve.shared.training.data_files import EMBEDDING_CORPORA

log = logging.getLogger("seqserve.train")
OBJECTIVE = Objective("ws353_spearman", "max")
# Fixed, so runs compare: the seed's mice/rats/horses, then a few frequent words of each kind.
PROBES = ("mice", "rats", "horses", "king", "queen", "good", "bad", "film", "music", "france", "three", "river")
_DROP = frozenset({"<unk>", "N", "@-@", "@,@", "@.@", "="})
_CORPORA = EMBEDDING_CORPORA


def read_sentences(path: Path, limit: int | None) -> list[list[str]]:
    """Non-empty lines of a tokenized corpus as lowercased word lists (at most `limit` lines)."""
    sentences: list[list[str]] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            words = [w.lower() for w in line.split() if w not in _DROP]
            if words:
                sentences.append(words)
            if limit is not None and len(sentences) >= limit:
                break
    return sentences


class _EpochScores(CallbackAny2Vec):
    """WordSim-353 rho after every epoch: the run's training curve (fastText reports no loss)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.started = time.perf_counter()

    def on_epoch_end(self, model: Word2Vec) -> None:
        scores = word_similarity(model.wv)
        self.history.append({"epoch": len(self.history) + 1, "seconds": time.perf_counter() - self.started,
                             "dev_ws353_spearman": scores["ws353_spearman"]})


def word_similarity(wv: KeyedVectors) -> dict[str, float]:
    """Spearman's rho with human judgements (WordSim-353, SimLex-999) and each set's OOV share."""
    scores: dict[str, float] = {}
    for name, file in (("ws353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        _, spearman, oov = wv.evaluate_word_pairs(datapath(file))
        scores[f"{name}_spearman"] = float(spearman.statistic) if np.isfinite(spearman.statistic) else 0.0
        scores[f"{name}_oov_percent"] = float(oov)
    return scores


def probe_neighbours(wv: KeyedVectors, k: int = 5) -> dict[str, list[list[Any]]]:
    """Each probe word's k nearest words by cosine ([word, score] pairs); probes unseen skipped."""
    return {word: [[w, round(float(s), 4)] for w, s in wv.most_similar(word, topn=k)]
            for word in PROBES if word in wv.key_to_index}


def _fit(cfg: dict[str, Any], sentences: list[list[str]], scores: _EpochScores) -> Word2Vec:
    common: dict[str, Any] = {
        "vector_size": cfg["dim"], "window": cfg["window"], "min_count": cfg["min_count"], "sg": int(cfg["sg"]),
        "negative": cfg["negative"], "epochs": cfg["epochs"], "alpha": cfg["lr"], "workers": cfg["workers"],
        "seed": cfg["seed"], "callbacks": [scores],
    }
    if cfg["algorithm"] == "fasttext":
        return FastText(sentences, min_n=cfg["min_n"], max_n=cfg["max_n"], bucket=cfg["bucket"], **common)
    return Word2Vec(sentences, **common)


def _module(wv: KeyedVectors, cfg: dict[str, Any]) -> WordVectors:
    """The vectors as a WordVectors module: <pad> and <unk> first (zero rows), then gensim's order."""
    subwords = cfg["algorithm"] == "fasttext"
    config = WordVectorsConfig(vocab_size=len(wv.index_to_key) + 2, dim=cfg["dim"],
                               bucket=cfg["bucket"] if subwords else 0, min_n=cfg["min_n"], max_n=cfg["max_n"])
    module = WordVectors(config)
    with torch.no_grad():
        module.embedding.weight.zero_()
        module.embedding.weight[2:] = torch.from_numpy(np.asarray(wv.vectors, dtype=np.float32))
        if module.ngrams is not None:
            module.ngrams.weight.copy_(torch.from_numpy(np.asarray(wv.vectors_ngrams, dtype=np.float32)))
    return module


def _train(run: TrainingSetup, data_dir: Path, out_path: Path) -> TrainOutcome:
    """Unlabelled sentences -> word vectors, scored on word-similarity sets, saved as a checkpoint."""
    cfg = run.cfg
    paths = [corpus_path(data_dir, corpus, "train") for corpus in _CORPORA[cfg["corpus"]]]
    data = run.fingerprint(paths)
    sentences = [s for path in paths for s in read_sentences(path, cfg["max_sentences"])]
    scores = _EpochScores()
    model = _fit(cfg, sentences, scores)
    seconds = time.perf_counter() - scores.started
    metrics: dict[str, Any] = {**word_similarity(model.wv), "vocab_size": len(model.wv.index_to_key),
                               "train_words": sum(map(len, sentences)), "train_seconds": round(seconds, 1),
                               "probe_neighbours": probe_neighbours(model.wv)}
    log.info("embeddings: %d words, ws353 rho %.3f in %.0f s", metrics["vocab_size"], metrics["ws353_spearman"],
             seconds)
    module = _module(model.wv, cfg)
    return _save(module, [PAD, UNK, *model.wv.index_to_key], cfg, metrics, scores.history, data, out_path)


def _save(module: WordVectors, vocab: list[str], cfg: dict[str, Any], metrics: dict[str, Any],
          history: list[dict[str, float]], data: Any, out_path: Path) -> TrainOutcome:
    model_config = dataclasses.asdict(module.config)
    payload = {"format": CHECKPOINT_FORMAT, "task": "embeddings", "model_config": model_config, "vocab": vocab,
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "metrics": metrics,
               "data_fingerprint": data.digest, "data_files": data.files,
               "train_config": {**cfg, "epochs_run": len(history)}}
    sha256, size = save_checkpoint(Path(out_path), payload)
    curve_path = Path(out_path).parent / "curve.png"
    _plot(history, curve_path)
    return TrainOutcome(Path(out_path), sha256, size, metrics, dict(cfg), model_config, data.digest, data.files,
                        history, curve_path, OBJECTIVE.metric)


def _plot(history: list[dict[str, float]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.plot([r["epoch"] for r in history], [r["dev_ws353_spearman"] for r in history], marker="o")
    ax.set(xlabel="epoch", ylabel="WordSim-353 Spearman rho", title="word vectors")
    ax.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)




train_embeddings = TaskTrainer("embeddings", OBJECTIVE, _train)
