"""Pretrained word vectors (GloVe / word2vec / fastText text format) as an embedding init matrix.

Format: one `word v1 v2 ... v_dim` per line, space-separated, optionally preceded by a
`count dim` header line (word2vec and fastText .vec write one, GloVe does not); .gz is read
transparently. Every line is checked, not only those of vocabulary words: a truncated or
mis-dimensioned file should fail loudly rather than quietly load fewer vectors.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import torch
from torch import Tensor

from seqserve.shared.text.vocab import Vocab


def load_pretrained_embeddings(path: Path, vocab: Vocab, dim: int) -> tuple[Tensor, int]:
    """An init matrix [len(vocab), dim] and how many vocabulary words the file covered.

    A word missing under its own spelling takes the vector of its lowercased form (GloVe is
    lowercased). Rows of uncovered words are drawn from torch's global RNG with the std of
    the found vectors, so they sit on the same scale; the padding row is zero.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    path = Path(path)
    wanted = {word: index for index, word in enumerate(vocab.to_list())}
    by_lower: dict[str, list[int]] = {}
    for word, index in wanted.items():
        by_lower.setdefault(word.lower(), []).append(index)
    exact: dict[int, list[float]] = {}
    folded: dict[int, list[float]] = {}
    for word, values in _vectors(path, dim):
        if word in wanted and wanted[word] not in exact:
            exact[wanted[word]] = values
        for index in by_lower.get(word, ()):
            folded.setdefault(index, values)
    found = folded | exact  # an exact spelling wins over a case-folded one
    found.pop(vocab.pad_id, None)
    return _matrix(len(vocab), dim, found, vocab.pad_id), len(found)


def _matrix(rows: int, dim: int, found: dict[int, list[float]], pad_id: int) -> Tensor:
    known = torch.tensor(list(found.values()), dtype=torch.float32).reshape(-1, dim)
    std = known.std().item() if known.numel() > 1 else 1.0
    matrix = torch.randn(rows, dim) * (std if math.isfinite(std) and std > 0 else 1.0)
    if found:
        matrix[list(found)] = known
    matrix[pad_id] = 0.0
    return matrix


def _vectors(path: Path, dim: int) -> Iterator[tuple[str, list[float]]]:
    with _open(path) as f:
        for number, line in enumerate(_decoded(path, f), start=1):
            fields = line.rstrip(" \r\n").split(" ")
            if number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                if int(fields[1]) != dim:
                    raise ValueError(f"{path}:1: header says dim {fields[1]}, expected {dim}")
                continue
            yield fields[0], _floats(path, number, fields, dim)


def _floats(path: Path, number: int, fields: list[str], dim: int) -> list[float]:
    if len(fields) != dim + 1 or not fields[0]:
        raise ValueError(f"{path}:{number}: expected a word and {dim} values, got {len(fields)} fields")
    try:
        values = [float(x) for x in fields[1:]]
    except ValueError:
        raise ValueError(f"{path}:{number}: values must be numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{path}:{number}: values must be finite")
    return values


def _open(path: Path) -> gzip.GzipFile | IO[bytes]:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained embeddings not found: {path}")
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


def _decoded(path: Path, f: Iterable[bytes]) -> Iterator[str]:
    for number, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}:{number}: invalid UTF-8 at byte {exc.start}") from None
