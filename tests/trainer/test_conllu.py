from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from seqserve.services.trainer.conllu import read_conllu
from seqserve.services.trainer.errors import DataFormatError

UPOS = {
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
}

# Two sentences: a multiword token (3-4), an empty node (5.1), comments, no final blank line.
GOOD = """# sent_id = 1
# text = I can't go.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
2\tca\tcan\tAUX\tMD\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_"""


@pytest.mark.parametrize(
    ("split", "sentences", "words"),
    [("train", 12_544, 204_577), ("dev", 2_001, 25_147), ("test", 2_077, 25_094)],
)
def test_reads_ewt_with_the_published_counts(
    data_dir: Path, split: str, sentences: int, words: int
) -> None:
    data = read_conllu(data_dir / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu.gz")
    assert len(data) == sentences
    assert sum(len(forms) for forms, _ in data) == words
    assert all(len(forms) == len(tags) for forms, tags in data)
    assert {tag for _, tags in data for tag in tags} == UPOS


def test_other_columns_by_name_or_index(data_dir: Path) -> None:
    path = data_dir / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz"
    xpos = read_conllu(path, "xpos")
    assert read_conllu(path, 4) == xpos
    assert len({tag for _, tags in xpos for tag in tags}) == 49
    assert xpos[1][0][:2] == ["President", "Bush"] and xpos[1][1][:2] == ["NNP", "NNP"]


def test_skips_comments_ranges_and_empty_nodes(tmp_path: Path) -> None:
    path = tmp_path / "good.conllu.gz"
    path.write_bytes(gzip.compress(GOOD.encode("utf-8")))
    assert read_conllu(path) == [
        (["I", "ca", "n't", "go", "."], ["PRON", "AUX", "PART", "VERB", "PUNCT"]),
        (["Yes"], ["INTJ"]),
    ]
    assert read_conllu(path, "lemma")[0][1] == ["I", "can", "not", "go", "."]


def _broken(line: int, replacement: str) -> str:
    lines = GOOD.split("\n")
    lines[line - 1] = replacement
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        (3, "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_", "expected 10 tab-separated columns, got 9"),
        (5, "3\tca\tcan\tAUX\tMD\t_\t3\taux\t_\t_", r"word id 3 out of sequence \(expected 2\)"),
        (4, "3-4\tcan't\t_\t_\t_\t_\t_\t_\t_\t_", "multiword range 3-4 out of sequence"),
        (9, "x\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_", "bad token id 'x'"),
        (3, "1\tI\tI\t\tPRP\t_\t3\tnsubj\t_\t_", "empty or space-padded value in column 3"),
        (12, "1-3\tYes\t_\t_\t_\t_\t_\t_\t_\t_", "multiword range ends at word 3"),
    ],
)
def test_malformed_lines_name_file_and_line(
    tmp_path: Path, line: int, replacement: str, message: str
) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(_broken(line, replacement), encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"bad.conllu:{line}: {message}") as info:
        read_conllu(path)
    assert info.value.path == path and info.value.line == line


def test_bad_utf8_and_bad_gzip_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_bytes(_broken(6, "3\tn't\tnot\tPART\tRB\t_\t4\tadv\xe9\t_\t_").encode("latin-1"))
    with pytest.raises(DataFormatError, match="bad.conllu:6: invalid UTF-8"):
        read_conllu(path)
    fake = tmp_path / "fake.conllu.gz"
    fake.write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match="fake.conllu.gz"):
        read_conllu(fake)
    with pytest.raises(DataFormatError, match="file not found"):
        read_conllu(tmp_path / "missing.conllu")


def test_plain_conll_reads_by_index(tmp_path: Path) -> None:
    path = tmp_path / "ner.txt"
    path.write_text(
        "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    )
    assert read_conllu(path, 3) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]
    with pytest.raises(DataFormatError, match="needs a CoNLL-U file"):
        read_conllu(path, "upos")
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n")
    with pytest.raises(DataFormatError, match="ner.txt:2: expected 4 columns"):
        read_conllu(path, 3)


def test_unknown_column_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "good.conllu"
    path.write_text(GOOD)
    with pytest.raises(ValueError, match="unknown CoNLL-U column 'pos'"):
        read_conllu(path, "pos")
    with pytest.raises(DataFormatError, match="column index 12"):
        read_conllu(path, 12)
