"""Sentence classification handler: preprocess -> infer -> postprocess over one batch of texts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seqserve.services.worker.handlers.base import StagedHandler, rows_per_pass
from seqserve.services.worker.handlers.vectors import WordTable
from seqserve.services.worker.model_calls import ModelCall
from seqserve.shared.config import Settings
from seqserve.shared.jobs.params import ClassifyParams
from seqserve.shared.json_codec import float32_list
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab


@dataclass(frozen=True)
class _Prepared:
    tokens: Tensor  # [B, T] long, rows sorted by length (longest first)
    lengths: Tensor  # [B] long, on CPU
    order: list[int]  # order[i] = input index of row i


class ClassifyHandler(StagedHandler[ClassifyParams, _Prepared, Tensor]):
    task = "classify"

    def __init__(
        self, model: SentenceClassifier, vocab: Vocab, labels: list[str], device: torch.device | str, rows_per_pass: int
    ) -> None:
        if model.config.num_classes != len(labels):
            raise ValueError(f"model has {model.config.num_classes} classes but {len(labels)} labels")
        super().__init__(device)
        self.model = model.to(self.device).eval()
        self.forward: ModelCall = self.model  # or its ONNX graph (services/worker/backends.py)
        self.vocab = vocab
        self.labels = list(labels)
        self.rows_per_pass = rows_per_pass

    @classmethod
    def from_checkpoint(
        cls, payload: dict[str, Any], device: torch.device | str, settings: Settings | None = None
    ) -> ClassifyHandler:
        model = cls.load_model(payload, SentenceClassifier, ClassifierConfig)
        rows = rows_per_pass(cls.task, torch.device(device), settings)
        return cls(model, Vocab.from_list(payload["vocab"]), payload["labels"], device, rows)

    def preprocess(self, inputs: list[str], params: ClassifyParams) -> _Prepared:
        encoded = [self.vocab.encode(tokenize(text)) or [self.vocab.unk_id] for text in inputs]
        # Longest first, so one batch pads as little as possible (and packing needs no re-sort).
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        tokens, lengths = pad_sequences([encoded[i] for i in order], self.model.config.pad_id)
        return _Prepared(tokens, lengths, order)

    def infer(self, prepared: _Prepared, params: ClassifyParams) -> Tensor:
        """Logits [B, C] (CPU), rows in the sorted order; each pass pads only to its own longest."""
        parts, chunk = [], self.rows_per_pass
        for start in range(0, prepared.tokens.size(0), chunk):
            lengths = prepared.lengths[start : start + chunk]
            tokens = prepared.tokens[start : start + chunk, : int(lengths[0])]  # rows sorted longest first
            parts.append(self.forward(tokens.to(self.device), lengths))  # [chunk, C]
        return torch.cat(parts).float().cpu()

    def postprocess(self, logits: Tensor, prepared: _Prepared, params: ClassifyParams) -> list[dict[str, Any]]:
        softmax = torch.softmax(logits, dim=-1)
        probabilities, best = float32_list(softmax.numpy()), softmax.argmax(dim=-1).tolist()
        results: list[dict[str, Any]] = [{} for _ in prepared.order]
        for row, index in enumerate(prepared.order):
            probs = probabilities[row]
            results[index] = {
                "label": self.labels[best[row]],
                "probabilities": dict(zip(self.labels, probs, strict=True)),
            }
        return results

    def word_table(self) -> WordTable:
        return WordTable(self.vocab, self.model.embedding.weight.detach(), encoder=self._encode_sentences)

    def _encode_sentences(self, texts: list[str]) -> Tensor:
        """[N, 2*D*H]: the BiLSTM features the output layer reads (final states + max pool)."""
        prepared = self.preprocess(texts, ClassifyParams())
        features = torch.empty(len(texts), self.model.config.feature_size)
        for start in range(0, prepared.tokens.size(0), self.rows_per_pass):
            lengths = prepared.lengths[start : start + self.rows_per_pass]
            tokens = prepared.tokens[start : start + self.rows_per_pass, : int(lengths[0])]
            rows = prepared.order[start : start + self.rows_per_pass]
            features[rows] = self.model.encode(tokens.to(self.device), lengths).float().cpu()
        return features
