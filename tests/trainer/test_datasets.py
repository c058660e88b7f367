from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from seqserve.services.trainer.datasets import (
    fingerprint,
    read_sst2,
    read_sst2_glue,
    read_sst2_sentence_level,
)
from seqserve.services.trainer.errors import DataFormatError
from seqserve.shared.checkpoint import sha256_file


@pytest.mark.parametrize(
    ("relative", "rows", "negatives", "positives"),
    [
        ("glue/train.tsv", 67_349, 29_780, 37_569),
        ("glue/dev.tsv", 872, 428, 444),
        ("sentence_level/stsa.binary.train", 6_920, 3_310, 3_610),
        ("sentence_level/stsa.binary.dev", 872, 428, 444),
        ("sentence_level/stsa.binary.test", 1_821, 912, 909),
    ],
)
def test_readers_match_source_counts(
    data_dir: Path, relative: str, rows: int, negatives: int, positives: int
) -> None:
    examples = read_sst2(data_dir / "sst2" / relative)
    assert len(examples) == rows
    assert Counter(label for _, label in examples) == {0: negatives, 1: positives}
    assert all(sentence and sentence == sentence.strip() for sentence, _ in examples)


def test_glue_reader_keeps_sentence_text(data_dir: Path) -> None:
    first = read_sst2_glue(data_dir / "sst2" / "glue" / "train.tsv")[0]
    assert first == ("hide new secretions from the parental units", 0)


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"sentence\tlabel\ngood film\t1\nbad film\n", 3, "2 tab-separated columns, got 1"),
        (b"sentence\tlabel\ngood film\t1\tx\n", 2, "got 3"),
        (b"sentence\tlabel\ngood film\t2\n", 2, "label must be 0 or 1"),
        (b"sentence\tlabel\n \t1\n", 2, "empty sentence"),
        (b"text\tlabel\ngood\t1\n", 1, "header"),
        (b"sentence\tlabel\ngood\t1\nbad \xff film\t0\n", 3, "invalid UTF-8"),
    ],
)
def test_malformed_glue_lines_name_file_and_line(
    tmp_path: Path, content: bytes, line: int, fragment: str
) -> None:
    path = _write(tmp_path, "bad.tsv", content)
    with pytest.raises(DataFormatError) as info:
        read_sst2_glue(path)
    assert f"{path}:{line}:" in str(info.value)
    assert fragment in str(info.value)
    assert info.value.line == line


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"1 a fine film\n0\n", 2, "expected '<label> <sentence>'"),
        (b"1 a fine film\nx a bad film\n", 2, "label must be 0 or 1"),
        (b"1 a fine film\n0 \n", 2, "empty sentence"),
        (b"1 caf\xc3\xa9\n1 \xc3\x28\n", 2, "invalid UTF-8"),
    ],
)
def test_malformed_sentence_level_lines_name_file_and_line(
    tmp_path: Path, content: bytes, line: int, fragment: str
) -> None:
    path = _write(tmp_path, "stsa.bad", content)
    with pytest.raises(DataFormatError) as info:
        read_sst2_sentence_level(path)
    assert f"{path}:{line}:" in str(info.value) and fragment in str(info.value)


def test_missing_file_is_a_data_format_error(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="file not found") as info:
        read_sst2_glue(tmp_path / "absent.tsv")
    assert str(tmp_path / "absent.tsv") in str(info.value)


def test_crlf_and_missing_final_newline_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "ok.tsv", b"sentence\tlabel\r\ngood film \t1\r\nbad film\t0")
    assert read_sst2_glue(path) == [("good film", 1), ("bad film", 0)]


def test_fingerprint_depends_on_content_and_order(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", b"1 yes\n")
    b = _write(tmp_path, "b", b"0 no\n")
    assert fingerprint([a, b]) == fingerprint([a, b])
    assert fingerprint([a, b]).digest != fingerprint([b, a]).digest
    before = fingerprint([a, b])
    assert before.files == {str(a): sha256_file(a), str(b): sha256_file(b)}  # each file's own digest too
    b.write_bytes(b"0 no!\n")
    assert fingerprint([a, b]).digest != before.digest and fingerprint([a, b]).files[str(a)] == before.files[str(a)]
