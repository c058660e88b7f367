"""A word-vector table with fastText-style subwords: the served form of an `embeddings` model.

In-vocabulary words have a row of `embedding`. An out-of-vocabulary word's vector is the mean
of its character n-gram rows in `ngrams`, the n-grams of "<word>" (n in min_n..max_n) hashed
with fastText's FNV-1a into `bucket` rows; this is what gensim 4's FastTextKeyedVectors
computes (tests/shared/test_word_vectors.py checks it against gensim), so serving needs no
gensim. A word2vec model has no `ngrams` (bucket 0) and no vectors for unseen words.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


@dataclass(frozen=True, kw_only=True)
class WordVectorsConfig:
    vocab_size: int
    dim: int
    bucket: int = 0  # 0: no subword n-grams
    min_n: int = 3
    max_n: int = 6
    pad_id: int = 0

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.dim < 1 or self.bucket < 0:
            raise ValueError("vocab_size must be >= 2, dim >= 1 and bucket >= 0")
        if not 1 <= self.min_n <= self.max_n:
            raise ValueError(f"need 1 <= min_n <= max_n, got {self.min_n}, {self.max_n}")


class WordVectors(nn.Module):
    def __init__(self, config: WordVectorsConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_id)
        self.ngrams = nn.Embedding(config.bucket, config.dim) if config.bucket else None

    def forward(self, ids: Tensor) -> Tensor:
        """ids [...] long -> vectors [..., D]."""
        return self.embedding(ids)

    def subword_vector(self, word: str) -> Tensor | None:
        """[D]: the mean of `word`'s n-gram rows, or None without n-grams (word2vec, or a word
        too short to have any)."""
        if self.ngrams is None:
            return None
        c = self.config
        rows = [fnv1a(gram) % c.bucket for gram in char_ngrams(word, c.min_n, c.max_n)]
        if not rows:
            return None
        return self.ngrams.weight[torch.tensor(rows)].mean(dim=0)


def char_ngrams(word: str, min_n: int, max_n: int) -> list[bytes]:
    """UTF-8 n-grams of "<word>", n counted in characters; single-character n-grams at the
    boundary ("<", ">") are left out, as fastText does."""
    chars = f"<{word}>"
    grams = []
    for start in range(len(chars)):
        for n in range(min_n, max_n + 1):
            end = start + n
            if end > len(chars):
                break
            if n == 1 and (start == 0 or end == len(chars)):
                continue
            grams.append(chars[start:end].encode("utf-8"))
    return grams


def fnv1a(data: bytes) -> int:
    """fastText's 32-bit FNV-1a, which XORs each byte as a *signed* char (matters above 0x7f)."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ ((byte - 256) & 0xFFFFFFFF if byte > 127 else byte)) * _FNV_PRIME) & 0xFFFFFFFF
    return h
