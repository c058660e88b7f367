"""Readers for the word-level language-modelling corpora (see datasets/{ptb,wikitext2}/SOURCE.md).

Both corpora are already tokenized: split each line on whitespace and append "<eos>", the
standard setup whose token counts the papers report. Empty lines (WikiText's paragraph
breaks) still contribute their "<eos>". Rare words are already "<unk>" in every split, so
the vocabulary is simply every type of the training split.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from seqserve.services.trainer.errors import DataFormatError
from seqserve.shared.nn.language_model import EOS
from seqserve.shared.text.vocab import Vocab
from seqserve.shared.training.data_files import LM_CORPORA, LM_SPLITS, lm_corpus_path

SPLITS = LM_SPLITS
CORPORA = LM_CORPORA
corpus_path = lm_corpus_path  # where a split of a corpus lives (shared: runs check their data before starting)


def read_token_stream(path: Path) -> list[str]:
    """Every line's whitespace-separated tokens followed by "<eos>", as one flat list."""
    tokens: list[str] = []
    for _, line in _lines(Path(path)):
        tokens.extend(line.split())
        tokens.append(EOS)
    if not tokens:
        raise DataFormatError(path, "empty file")
    return tokens


def read_corpus(data_dir: Path, corpus: str) -> dict[str, list[str]]:
    """The train, valid and test token streams of `corpus`."""
    return {split: read_token_stream(corpus_path(data_dir, corpus, split)) for split in SPLITS}


def build_vocab(train_tokens: list[str]) -> Vocab:
    """Every type of the training stream (ids 0/1 stay Vocab's <pad>/<unk>)."""
    return Vocab.build([train_tokens])


def encode_stream(tokens: list[str], vocab: Vocab) -> Tensor:
    """Token stream -> ids [N] long; types missing from `vocab` become <unk>."""
    return torch.tensor(vocab.encode(tokens), dtype=torch.long)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded text) for a .gz or plain file, decoding line by line."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataFormatError(path, f"invalid UTF-8 at byte {exc.start}", number) from None
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataFormatError(path, f"corrupt gzip data: {exc}") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read file: {exc.strerror or exc}") from exc
