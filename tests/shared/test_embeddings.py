from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from seqserve.shared.nn.embeddings import load_pretrained_embeddings
from seqserve.shared.text.vocab import Vocab

VOCAB = Vocab(["<pad>", "<unk>", "the", "Paris", "cat", "zyzzyva"])
LINES = ["the 0.1 0.2 0.3", "paris 1.0 1.0 1.0", "Paris 2.0 2.0 2.0", "cat -0.5 0.5 0.25 ", "dog 9 9 9"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loads_found_words_and_randomises_the_rest(tmp_path: Path) -> None:
    torch.manual_seed(0)
    matrix, found = load_pretrained_embeddings(_write(tmp_path / "vec.txt", LINES), VOCAB, 3)
    assert matrix.shape == (len(VOCAB), 3) and matrix.dtype == torch.float32
    assert found == 3  # the, Paris, cat; zyzzyva and <unk> are missing
    assert matrix[2].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert matrix[3].tolist() == [2.0, 2.0, 2.0]  # the exact spelling beats "paris"
    assert matrix[4].tolist() == [-0.5, 0.5, 0.25]
    assert torch.equal(matrix[0], torch.zeros(3))  # padding stays zero
    assert not torch.equal(matrix[5], torch.zeros(3)) and torch.isfinite(matrix).all()


def test_lowercased_vectors_cover_capitalised_words(tmp_path: Path) -> None:
    vocab = Vocab(["<pad>", "<unk>", "Cat", "THE"])
    matrix, found = load_pretrained_embeddings(_write(tmp_path / "vec.txt", LINES), vocab, 3)
    assert found == 2
    assert matrix[2].tolist() == [-0.5, 0.5, 0.25]
    assert matrix[3].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_header_line_and_gzip_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "vec.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(["5 3", *LINES]) + "\n")
    matrix, found = load_pretrained_embeddings(path, VOCAB, 3)
    assert found == 3 and matrix[4].tolist() == [-0.5, 0.5, 0.25]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["the 0.1 0.2 0.3", "cat 0.1 0.2"], 2, "expected a word and 3 values"),
        (["the 0.1 0.2 0.3", "", "cat 1 2 3"], 2, "expected a word and 3 values"),
        (["the 0.1 x 0.3"], 1, "values must be numbers"),
        (["the 0.1 nan 0.3"], 1, "values must be finite"),
        (["4 5", "the 1 2 3 4 5"], 1, "header says dim 5"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    path = _write(tmp_path / "bad.txt", lines)
    with pytest.raises(ValueError, match=f"bad.txt:{line}: {message}"):
        load_pretrained_embeddings(path, VOCAB, 3)


def test_bad_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"the 1 2 3\ncaf\xe9 1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt:2: invalid UTF-8"):
        load_pretrained_embeddings(path, VOCAB, 3)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_pretrained_embeddings(tmp_path / "nope.txt", VOCAB, 3)
