"""Small models of every task, as checkpoint payloads, for tests that compare backends or devices."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from seqserve.services.worker.handlers.tag import tag_tokens
from seqserve.services.worker.handlers.translate import to_corpus_tokens
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier
from seqserve.shared.nn.language_model import EOS, LanguageModelConfig, RNNLanguageModel
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from seqserve.shared.nn.tagger import SequenceTagger, TaggerConfig, TokenEncoder
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab

# Lengths from 1 to 14 tokens in one batch, an empty text, repeated words: padding of every width.
TEXTS = [
    "a gorgeous , witty , seductive movie .", "dull", "", "the film is not the worst of the year , but close",
    "a dog runs on the red sofa while two cats sleep and a man reads", "two cats", "the the the",
]


def payload(task: str, config: Any, model: torch.nn.Module, **extra: Any) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, "task": task, "model_config": dataclasses.asdict(config),
            "state_dict": model.state_dict(), "metrics": {}, "data_fingerprint": "", "train_config": {}, **extra}


def vocab(tokens: list[list[str]]) -> Vocab:
    return Vocab.build(tokens)


def classifier(cell: str, layers: int, bidirectional: bool) -> dict[str, Any]:
    torch.manual_seed(1)
    words = vocab([tokenize(t) for t in TEXTS[:4]])  # later texts hold unknown words
    config = ClassifierConfig(vocab_size=len(words), num_classes=3, cell=cell, num_layers=layers,  # type: ignore[arg-type]
                              bidirectional=bidirectional, embedding_dim=8, hidden_size=6)
    return payload("classify", config, SentenceClassifier(config), vocab=words.to_list(), labels=["a", "b", "c"])


def tagger(cell: str, char_hidden: int) -> dict[str, Any]:
    torch.manual_seed(2)
    tokens = [tag_tokens(t) for t in TEXTS[:4]]
    encoder = TokenEncoder(vocab([[t.lower() for t in ts] for ts in tokens]),
                           vocab([list(t) for ts in tokens for t in ts]), True, 6)
    config = TaggerConfig(vocab_size=len(encoder.words), num_tags=4, cell=cell,  # type: ignore[arg-type]
                          char_vocab_size=len(encoder.chars), embedding_dim=8, char_embedding_dim=4,
                          char_hidden_size=char_hidden, hidden_size=8, num_layers=2)
    return payload("tag", config, SequenceTagger(config), **encoder.to_payload(), tags=["A", "B", "C", "D"])


def language_model(cell: str) -> dict[str, Any]:
    torch.manual_seed(3)
    words = sorted({w for t in TEXTS for w in tokenize(t)})
    table = Vocab([Vocab.PAD, Vocab.UNK, EOS, *words])
    config = LanguageModelConfig(vocab_size=len(table), cell=cell, embedding_dim=12, hidden_size=10)  # type: ignore[arg-type]
    model = RNNLanguageModel(config)
    with torch.no_grad():  # peakier than the initialisation, so sampling has something to choose
        model.decoder.bias.normal_(0, 2)
    return payload("generate", config, model, vocab=table.to_list())


def translator(cell: str, attention: str) -> dict[str, Any]:
    torch.manual_seed(4)
    src_vocab = vocab([to_corpus_tokens(t) for t in TEXTS[:4]])
    tgt_vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>", "ein", "hund", "zwei", "katzen", "."])
    config = Seq2SeqConfig(src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab), src_embedding_dim=8,
                           tgt_embedding_dim=8, hidden_size=12, cell=cell, attention=attention)  # type: ignore[arg-type]
    model = Seq2Seq(config)
    with torch.no_grad():  # eos likelier, so hypotheses of different lengths compete
        model.generator.bias[config.eos_id] += 1.5
    return payload("translate", config, model, src_vocab=src_vocab.to_list(), tgt_vocab=tgt_vocab.to_list())
