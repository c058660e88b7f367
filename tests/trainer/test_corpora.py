from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from seqserve.services.trainer.corpora import (
    EOS,
    build_vocab,
    corpus_path,
    encode_stream,
    read_corpus,
    read_token_stream,
)
from seqserve.services.trainer.errors import DataFormatError
from seqserve.shared.text.vocab import Vocab

# datasets/{ptb,wikitext2}/SOURCE.md: tokens including one <eos> per line, lines, and
# vocabulary sizes including <eos>; Vocab adds its <pad> on top.
EXPECTED = {
    "ptb": (
        {"train": 929_589, "valid": 73_760, "test": 82_430},
        {"train": 42_068, "valid": 3_370, "test": 3_761},
        10_000,
    ),
    "wikitext2": (
        {"train": 2_088_628, "valid": 217_646, "test": 245_569},
        {"train": 36_718, "valid": 3_760, "test": 4_358},
        33_278,
    ),
}


@pytest.mark.parametrize("corpus", sorted(EXPECTED))
def test_counts_match_source_md(data_dir: Path, corpus: str) -> None:
    counts, lines, vocab_size = EXPECTED[corpus]
    streams = read_corpus(data_dir, corpus)
    assert {split: len(tokens) for split, tokens in streams.items()} == counts
    assert {split: tokens.count(EOS) for split, tokens in streams.items()} == lines
    vocab = build_vocab(streams["train"])
    assert len(vocab) == vocab_size + 1 and vocab.to_list()[:2] == [Vocab.PAD, Vocab.UNK]
    assert EOS in vocab
    # Rare words are already <unk> in every split: nothing is out of the training vocabulary.
    assert all(token in vocab for token in streams["valid"] + streams["test"])


def test_ptb_stream_starts_like_the_file(data_dir: Path) -> None:
    tokens = read_token_stream(corpus_path(data_dir, "ptb", "valid"))
    assert tokens[:4] == ["consumers", "may", "want", "to"]
    assert tokens[-1] == EOS


def test_every_line_gets_an_eos_including_empty_ones(tmp_path: Path) -> None:
    path = tmp_path / "tiny.tokens.gz"
    path.write_bytes(gzip.compress(b" = Title = \n \n a b \n"))
    assert read_token_stream(path) == ["=", "Title", "=", EOS, EOS, "a", "b", EOS]
    plain = tmp_path / "tiny.txt"
    plain.write_text(" x  y\n\nz\n", encoding="utf-8")
    assert read_token_stream(plain) == ["x", "y", EOS, EOS, "z", EOS]


def test_plain_copy_is_used_when_no_gz_exists(tmp_path: Path) -> None:
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.valid.txt").write_text(" a b \n", encoding="utf-8")
    assert corpus_path(tmp_path, "ptb", "valid") == tmp_path / "ptb" / "ptb.valid.txt"
    assert corpus_path(tmp_path, "ptb", "test") == tmp_path / "ptb" / "ptb.test.txt.gz"


@pytest.mark.parametrize("compress", [False, True])
def test_bad_utf8_names_file_and_line(tmp_path: Path, compress: bool) -> None:
    data = b" fine line \n another \n caf\xe9 \n"
    path = tmp_path / ("bad.txt.gz" if compress else "bad.txt")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataFormatError, match=r"bad\.txt(\.gz)?:3: invalid UTF-8") as info:
        read_token_stream(path)
    assert info.value.path == path and info.value.line == 3


def test_missing_empty_and_corrupt_files_raise(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"nope\.txt\.gz: file not found"):
        read_token_stream(tmp_path / "nope.txt.gz")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.txt: empty file"):
        read_token_stream(tmp_path / "empty.txt")
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip at all\n")
    with pytest.raises(DataFormatError, match=r"broken\.txt\.gz: corrupt gzip"):
        read_token_stream(tmp_path / "broken.txt.gz")
    with pytest.raises(DataFormatError, match="file not found"):
        read_corpus(tmp_path, "wikitext2")


def test_unknown_corpus_or_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown corpus 'enwik8'"):
        corpus_path(tmp_path, "enwik8", "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        corpus_path(tmp_path, "ptb", "dev")


def test_vocab_is_deterministic_and_encoding_maps_unknowns() -> None:
    stream = ["b", "a", EOS, "b", "<unk>", EOS]
    vocab = build_vocab(stream)
    assert vocab.to_list() == [Vocab.PAD, Vocab.UNK, EOS, "b", "a"]
    assert build_vocab(list(stream)) == vocab
    assert encode_stream(["a", "zebra", EOS], vocab).tolist() == [4, Vocab.unk_id, 2]
