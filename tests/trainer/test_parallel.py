from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from seqserve.services.trainer.errors import DataFormatError
from seqserve.services.trainer.parallel import read_parallel


def _tok(data_dir: Path, split: str, lang: str) -> Path:
    return data_dir / "multi30k_en_de" / "tok" / f"{split}.lc.norm.tok.{lang}.gz"


@pytest.mark.parametrize(
    ("split", "pairs", "en_words", "de_words"),
    [
        ("train", 29_000, 377_534, 360_706),
        ("val", 1_014, 13_308, 12_828),
        ("test_2016_flickr", 1_000, 12_968, 12_103),
    ],
)
def test_reader_matches_source_counts(data_dir: Path, split: str, pairs: int, en_words: int, de_words: int) -> None:
    corpus = read_parallel(_tok(data_dir, split, "en"), _tok(data_dir, split, "de"))
    assert len(corpus) == pairs
    assert sum(len(en) for en, _ in corpus) == en_words
    assert sum(len(de) for _, de in corpus) == de_words


def test_reader_keeps_alignment_and_tokens(data_dir: Path) -> None:
    first = read_parallel(_tok(data_dir, "val", "en"), _tok(data_dir, "val", "de"))[0]
    assert first == (
        ["a", "group", "of", "men", "are", "loading", "cotton", "onto", "a", "truck"],
        ["eine", "gruppe", "von", "männern", "lädt", "baumwolle", "auf", "einen", "lastwagen"],
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_plain_and_gzipped_files_read_alike(tmp_path: Path, suffix: str) -> None:
    src = _write(tmp_path / f"a.en{suffix}", b"a dog .\r\ntwo  cats\n")
    tgt = _write(tmp_path / f"a.de{suffix}", b"ein hund .\nzwei katzen")
    assert read_parallel(src, tgt) == [(["a", "dog", "."], ["ein", "hund", "."]), (["two", "cats"], ["zwei", "katzen"])]


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path: Path) -> None:
    src = _write(tmp_path / "x.en.gz", b"one\ntwo\nthree\n")
    tgt = _write(tmp_path / "x.de.gz", b"eins\nzwei\n")
    with pytest.raises(DataFormatError) as info:
        read_parallel(src, tgt)
    message = str(info.value)
    assert str(src) in message and str(tgt) in message
    assert "3 lines" in message and "has 2" in message


@pytest.mark.parametrize(
    ("data", "line", "what"),
    [
        (b"fine\nbad \xff byte\nfine\n", 2, "invalid UTF-8"),
        (b"fine\nfine\n\nfine\n", 3, "empty sentence"),
        (b"fine\n \t \nfine\nfine\n", 2, "empty sentence"),
    ],
)
@pytest.mark.parametrize("side", ["src", "tgt"])
def test_malformed_lines_name_file_and_line(tmp_path: Path, data: bytes, line: int, what: str, side: str) -> None:
    good = _write(tmp_path / "good.gz", b"ok\n" * data.count(b"\n"))
    bad = _write(tmp_path / "bad.gz", data)
    with pytest.raises(DataFormatError, match=what) as info:
        read_parallel(bad, good) if side == "src" else read_parallel(good, bad)
    assert info.value.path == bad and info.value.line == line
    assert f"{bad}:{line}:" in str(info.value)


def test_missing_corrupt_and_empty_files_are_reported(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.en", b"ok\n")
    with pytest.raises(DataFormatError, match="file not found") as info:
        read_parallel(tmp_path / "missing.en.gz", good)
    assert info.value.path == tmp_path / "missing.en.gz"
    corrupt = _write(tmp_path / "corrupt.de", b"not gzip at all")
    corrupt = corrupt.rename(tmp_path / "corrupt.de.gz")
    with pytest.raises(DataFormatError, match="not a valid gzip file"):
        read_parallel(good, corrupt)
    empty = _write(tmp_path / "empty.en", b"")
    with pytest.raises(DataFormatError, match="no sentence pairs"):
        read_parallel(empty, _write(tmp_path / "empty.de", b""))
