"""Readers for the two SST-2 packagings (see datasets/sst2/SOURCE.md) and data fingerprints.

Both readers return (sentence, label) pairs with the sentence as stored; tokenization is the
caller's (seqserve.shared.text.tokenize, which also maps the -lrb-/-rrb- spelling onto brackets).
Every malformed line is an error, never skipped: a silently shrunken training set is worse
than a failed run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqserve.services.trainer.errors import DataFormatError
from seqserve.shared.checkpoint import sha256_file

Example = tuple[str, int]
_LABELS = {"0": 0, "1": 1}
GLUE_HEADER = "sentence\tlabel"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the newline), decoding each line on its own."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read file: {exc.strerror}") from exc
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the final newline ends the last line; it does not start another
    for number, raw in enumerate(raw_lines, start=1):
        try:
            yield number, raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, f"invalid UTF-8 at byte {exc.start}", number) from None


def _label(path: Path, number: int, text: str) -> int:
    if text not in _LABELS:
        raise DataFormatError(path, f"label must be 0 or 1, got {text!r}", number)
    return _LABELS[text]


def _sentence(path: Path, number: int, text: str) -> str:
    if not text.strip():
        raise DataFormatError(path, "empty sentence", number)
    return text.strip()


def read_sst2_glue(path: Path) -> list[Example]:
    """GLUE SST-2 train/dev TSV: a `sentence<TAB>label` header, then one row per example."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(path, "empty file (expected a header)")
    if first[1] != GLUE_HEADER:
        raise DataFormatError(path, f"header must be {GLUE_HEADER!r}, got {first[1]!r}", 1)
    examples: list[Example] = []
    for number, line in lines:
        columns = line.split("\t")
        if len(columns) != 2:
            raise DataFormatError(path, f"expected 2 tab-separated columns, got {len(columns)}", number)
        examples.append((_sentence(path, number, columns[0]), _label(path, number, columns[1])))
    if not examples:
        raise DataFormatError(path, "no examples after the header")
    return examples


def read_sst2_sentence_level(path: Path) -> list[Example]:
    """stsa.binary.{train,dev,test}: one `<label> <sentence>` per line."""
    examples: list[Example] = []
    for number, line in _lines(path):
        label, sep, sentence = line.partition(" ")
        if not sep:
            raise DataFormatError(path, "expected '<label> <sentence>'", number)
        examples.append((_sentence(path, number, sentence), _label(path, number, label)))
    if not examples:
        raise DataFormatError(path, "no examples")
    return examples


def read_sst2(path: Path) -> list[Example]:
    """Either packaging, told apart by name: GLUE files are .tsv, the sentence-level ones not."""
    if Path(path).suffix == ".tsv":
        return read_sst2_glue(path)
    return read_sst2_sentence_level(path)


@dataclass(frozen=True)
class DataFingerprint:
    digest: str  # sha256 over the files' sha256 hex digests, in order: the version's dataset fingerprint
    files: dict[str, str]  # each file read (path as given) -> its sha256


def fingerprint(paths: list[Path]) -> DataFingerprint:
    """The files' digests, one by one and together; a missing file is a DataFormatError."""
    files: dict[str, str] = {}
    for path in paths:
        if not Path(path).is_file():
            raise DataFormatError(path, "file not found")
        files[str(path)] = sha256_file(path)
    return DataFingerprint(hashlib.sha256("".join(files.values()).encode("ascii")).hexdigest(), files)
