"""Reader for CoNLL-U treebanks (and plain CoNLL column files) as (forms, tags) sentences.

CoNLL-U (https://universaldependencies.org/format.html): ten tab-separated columns, `#`
comments, a blank line after each sentence. Tagging uses the syntactic words, so multiword
token ranges ("3-4") and empty nodes ("8.1") are skipped. A file whose first token line does
not start with an integer ID is read as plain CoNLL instead (CoNLL-2000/2003 style:
whitespace-separated columns, the form first, `-DOCSTART-` lines skipped); such a file
needs a 0-based column index. Lines starting with `#` are comments in both formats. As in
datasets.py, every malformed line is an error, never skipped.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from seqserve.services.trainer.errors import DataFormatError

Sentence = tuple[list[str], list[str]]  # (forms, tags), same length
COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.[1-9][0-9]*")
_ID_LIKE = re.compile(r"[0-9]+([-.][0-9]+)?")
_DOCSTART = "-DOCSTART-"


def read_conllu(path: Path, column: int | str = "upos") -> list[Sentence]:
    """Sentences of `path` (.gz or plain) as (forms, values of `column`) pairs."""
    path = Path(path)
    index = _column_index(column)
    blocks = list(_blocks(path))
    if not blocks:
        raise DataFormatError(path, "no sentences")
    conllu = _is_conllu(blocks[0][0][1])
    if not conllu and isinstance(column, str):
        raise DataFormatError(
            path, f"column {column!r} by name needs a CoNLL-U file; give an index", blocks[0][0][0]
        )
    read = _conllu_sentence if conllu else _plain_sentence
    width = None if conllu else len(blocks[0][0][1].split())
    sentences = [read(path, block, index, width) for block in blocks]
    return [sentence for sentence in sentences if sentence[0]]


def _is_conllu(first_token_line: str) -> bool:
    # Tab-separated with an ID first; the column count is then checked line by line.
    first, tab, _ = first_token_line.partition("\t")
    return bool(tab) and _ID_LIKE.fullmatch(first) is not None


def _column_index(column: int | str) -> int:
    if isinstance(column, bool) or not isinstance(column, (int, str)):
        raise ValueError(f"column must be a name or a 0-based index, got {column!r}")
    if isinstance(column, str):
        if column not in COLUMNS:
            raise ValueError(f"unknown CoNLL-U column {column!r}; expected one of {list(COLUMNS)}")
        return COLUMNS.index(column)
    if column < 0:
        raise ValueError(f"column index must be >= 0, got {column}")
    return column


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the newline); gzip by the .gz suffix."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(path, f"cannot read file: {exc}") from exc
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        try:
            yield number, raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, f"invalid UTF-8 at byte {exc.start}", number) from None


def _blocks(path: Path) -> Iterator[list[tuple[int, str]]]:
    """Each sentence's token lines (comments and -DOCSTART- dropped), split at blank lines."""
    block: list[tuple[int, str]] = []
    for number, line in _lines(path):
        if not line.strip():
            if block:
                yield block
            block = []
        elif not line.startswith("#") and line.split(maxsplit=1)[0] != _DOCSTART:
            block.append((number, line))
    if block:
        yield block


def _conllu_sentence(path: Path, block: list[tuple[int, str]], index: int, _: int | None) -> Sentence:
    forms: list[str] = []
    tags: list[str] = []
    covered = 0  # the last word id a multiword range has announced
    for number, line in block:
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            raise DataFormatError(
                path, f"expected {len(COLUMNS)} tab-separated columns, got {len(fields)}", number
            )
        token_id, expected = fields[0], len(forms) + 1
        if _WORD_ID.fullmatch(token_id):
            if int(token_id) != expected:
                raise DataFormatError(
                    path, f"word id {token_id} out of sequence (expected {expected})", number
                )
            forms.append(_value(path, number, fields, 1))
            tags.append(_value(path, number, fields, index))
        elif match := _RANGE_ID.fullmatch(token_id):
            start, end = int(match[1]), int(match[2])
            if start != expected or end <= start:
                raise DataFormatError(
                    path, f"multiword range {token_id} out of sequence (next word {expected})", number
                )
            covered = end
        elif not _EMPTY_ID.fullmatch(token_id):
            raise DataFormatError(path, f"bad token id {token_id!r}", number)
    if covered > len(forms):
        raise DataFormatError(
            path, f"multiword range ends at word {covered} past the sentence's last word", block[-1][0]
        )
    return forms, tags


def _plain_sentence(path: Path, block: list[tuple[int, str]], index: int, width: int | None) -> Sentence:
    forms: list[str] = []
    tags: list[str] = []
    for number, line in block:
        fields = line.split()
        if len(fields) != width:
            raise DataFormatError(
                path, f"expected {width} columns like the first token line, got {len(fields)}", number
            )
        forms.append(fields[0])
        tags.append(_value(path, number, fields, index))
    return forms, tags


def _value(path: Path, number: int, fields: list[str], index: int) -> str:
    if index >= len(fields):
        raise DataFormatError(
            path, f"column index {index} but the line has {len(fields)} columns", number
        )
    value = fields[index]
    if not value or value != value.strip():
        raise DataFormatError(path, f"empty or space-padded value in column {index}", number)
    return value
