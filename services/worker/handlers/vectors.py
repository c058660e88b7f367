"""The `embed` and `similar` kinds, written once for every model with a word embedding table.

A handler describes its table as a `WordTable` (vocabulary, matrix, and optionally subword
vectors and a sentence encoder); `StagedHandler.run` sends these two kinds here instead of
to the task's own stages. Lookups try the word as written, then lowercased (most tables here
are lowercased). An unknown word gets a vector from subwords where the model has them
(fastText; the result says `"source": "subwords"`) and otherwise a per-input `error`.
Neighbour search never returns <pad> or <unk>, and leaves the query word out unless
`include_self` (then it comes first, at cosine 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqserve.shared.jobs.params import EmbedParams, JobParams, SimilarParams
from seqserve.shared.text.tokenize import tokenize
from seqserve.shared.text.vocab import Vocab

_SPECIAL_ROWS = 2  # Vocab ids 0 and 1: <pad> and <unk>
_ARITY = {"neighbours": 1, "similarity": 2, "analogy": 3}


@dataclass
class WordTable:
    vocab: Vocab
    matrix: Tensor  # [V, D] float, rows aligned with `vocab`
    subwords: Callable[[str], Tensor | None] | None = None  # an OOV word -> [D], fastText only
    # Sentences -> [N, H] features of the model's own encoder (classifier, tagger BiLSTM).
    encoder: Callable[[list[str]], Tensor] | None = None
    tokenize: Callable[[str], list[str]] = tokenize
    _unit: Tensor | None = field(default=None, repr=False)

    @property
    def unit(self) -> Tensor:
        """[V, D] rows at unit norm (zero rows stay zero); cached, the table never changes."""
        if self._unit is None:
            self._unit = F.normalize(self.matrix.float(), dim=-1)
        return self._unit

    def lookup(self, word: str) -> tuple[Tensor | None, str]:
        """(vector [D] or None, where it came from: "vocab", "subwords" or "unknown")."""
        for form in (word, word.lower()):
            index = self.vocab.encode([form])[0]
            if index >= _SPECIAL_ROWS:
                return self.matrix[index].float(), "vocab"
        vector = self.subwords(word.lower()) if self.subwords is not None else None
        return (vector.float(), "subwords") if vector is not None else (None, "unknown")

    def unknown(self, word: str) -> str:
        return f"{word!r} is not in the model's vocabulary ({len(self.vocab)} words) and it has no subword vectors"


def split_words(inputs: list[str], arity: int, what: str) -> list[list[str]]:
    """Each input as `arity` words; ValueError naming the input otherwise (an empty word included)."""
    rows = []
    for i, text in enumerate(inputs):
        words = text.split()
        if len(words) != arity:
            raise ValueError(f"inputs[{i}]: {what} takes {arity} word(s) per input, got {len(words)} in {text!r}")
        rows.append(words)
    return rows


class VectorStages:
    """preprocess -> infer -> postprocess of `embed` and `similar` over one WordTable; the
    stages StagedHandler.run times like a task's own."""

    def __init__(self, table: WordTable) -> None:
        self.table = table

    def preprocess(self, inputs: list[str], params: JobParams) -> list[list[str]]:
        if isinstance(params, SimilarParams):
            return split_words(inputs, _ARITY[params.mode], f"similar mode {params.mode!r}")
        assert isinstance(params, EmbedParams)
        if params.level == "word":
            return split_words(inputs, 1, "embed level 'word'")
        if params.pooling == "encoder" and self.table.encoder is None:
            raise ValueError("pooling: 'encoder' needs a model with a sentence encoder (classify, tag)")
        for i, text in enumerate(inputs):
            if not text.strip():
                raise ValueError(f"inputs[{i}]: empty sentence")
        return [[text] for text in inputs]

    def infer(self, prepared: list[list[str]], params: JobParams) -> list[dict[str, Any]]:
        if isinstance(params, SimilarParams):
            return [self._similar(words, params) for words in prepared]
        assert isinstance(params, EmbedParams)
        if params.level == "sentence" and params.pooling == "encoder":
            assert self.table.encoder is not None
            encoded = self.table.encoder([text for text, in prepared]).float().cpu()  # [N, H]
            return [{"vector": row, "source": "encoder"} for row in encoded]
        if params.level == "sentence":
            return [self._mean(text) for text, in prepared]
        return [self._word(word) for word, in prepared]

    def postprocess(
        self, raw: list[dict[str, Any]], prepared: list[list[str]], params: JobParams
    ) -> list[dict[str, Any]]:
        normalize = isinstance(params, EmbedParams) and params.normalize
        for result in raw:
            vector = result.get("vector")
            if isinstance(vector, Tensor):
                result["vector"] = (F.normalize(vector, dim=0) if normalize else vector).tolist()
                result["dim"] = len(result["vector"])
        return raw

    def _word(self, word: str) -> dict[str, Any]:
        vector, source = self.table.lookup(word)
        if vector is None:
            return {"word": word, "source": source, "error": self.table.unknown(word)}
        return {"word": word, "source": source, "vector": vector}

    def _mean(self, text: str) -> dict[str, Any]:
        tokens = self.table.tokenize(text)
        found = [(t, *self.table.lookup(t)) for t in tokens]
        vectors = [v for _, v, _ in found if v is not None]
        unknown = [t for t, v, _ in found if v is None]
        if not vectors:
            return {"tokens": tokens, "unknown": unknown, "source": "mean",
                    "error": "none of the sentence's words has a vector in this model"}
        return {"tokens": tokens, "unknown": unknown, "source": "mean", "vector": torch.stack(vectors).mean(dim=0)}

    def _similar(self, words: list[str], params: SimilarParams) -> dict[str, Any]:
        looked = [self.table.lookup(w) for w in words]
        result: dict[str, Any] = {"words": words, "sources": [source for _, source in looked]}
        missing = [w for w, (v, _) in zip(words, looked, strict=True) if v is None]
        if missing:
            return result | {"error": "; ".join(self.table.unknown(w) for w in missing)}
        vectors = [F.normalize(v, dim=0) for v, _ in looked if v is not None]
        if params.mode == "similarity":
            return result | {"similarity": float(vectors[0] @ vectors[1])}
        query = vectors[0] if params.mode == "neighbours" else vectors[0] - vectors[1] + vectors[2]
        keep_self = params.mode == "neighbours" and params.include_self
        exclude = set() if keep_self else {form for w in words for form in (w, w.lower())}
        return result | {"neighbours": self._nearest(query, params.k, exclude)}

    def _nearest(self, query: Tensor, k: int, exclude: set[str]) -> list[dict[str, Any]]:
        scores = self.table.unit[_SPECIAL_ROWS:] @ F.normalize(query, dim=0)  # [V - 2]
        excluded = [i - _SPECIAL_ROWS for i in self.table.vocab.encode(exclude) if i >= _SPECIAL_ROWS]
        if excluded:
            scores[excluded] = float("-inf")
        top = scores.topk(min(k, scores.numel() - len(excluded)))
        words = self.table.vocab.decode((top.indices + _SPECIAL_ROWS).tolist())
        return [{"word": w, "score": float(s)} for w, s in zip(words, top.values.tolist(), strict=True)]
