"""Word vectors (the `embeddings` task): a WordVectors table served through the shared
`embed` / `similar` stages (services/worker/handlers/vectors.py); fastText models give
unseen words a vector from their character n-grams."""

from __future__ import annotations

from typing import Any

import torch

from seqserve.services.worker.handlers.base import StagedHandler
from seqserve.services.worker.handlers.vectors import WordTable
from seqserve.shared.config import Settings
from seqserve.shared.jobs.params import JobParams
from seqserve.shared.nn.word_vectors import WordVectors, WordVectorsConfig
from seqserve.shared.text.vocab import Vocab


class EmbeddingsHandler(StagedHandler[JobParams, Any, Any]):
    task = "embeddings"

    def __init__(self, model: WordVectors, vocab: Vocab, device: torch.device | str) -> None:
        if model.config.vocab_size != len(vocab):
            raise ValueError(f"model has {model.config.vocab_size} vectors but the vocabulary {len(vocab)} words")
        super().__init__(device)
        # The table stays on the CPU: a lookup and one [V, D] @ [D] product per query word
        # cost less than the copies to and from an accelerator.
        self.model = model.eval()
        self.vocab = vocab

    @classmethod
    def from_checkpoint(
        cls, payload: dict[str, Any], device: torch.device | str, settings: Settings | None = None
    ) -> EmbeddingsHandler:
        model = cls.load_model(payload, WordVectors, WordVectorsConfig)
        return cls(model, Vocab.from_list(payload["vocab"]), device)

    def word_table(self) -> WordTable:
        subwords = self.model.subword_vector if self.model.ngrams is not None else None
        return WordTable(self.vocab, self.model.embedding.weight.detach(), subwords=subwords)

    # Every kind of this task is a vector kind, which StagedHandler.run sends to VectorStages.
    def preprocess(self, inputs: list[str], params: JobParams) -> Any:
        raise AssertionError("unreachable: embeddings kinds run in VectorStages")

    def infer(self, prepared: Any, params: JobParams) -> Any:
        raise AssertionError("unreachable: embeddings kinds run in VectorStages")

    def postprocess(self, raw: Any, prepared: Any, params: JobParams) -> list[dict[str, Any]]:
        raise AssertionError("unreachable: embeddings kinds run in VectorStages")
