"""Reader for sentence-aligned parallel corpora (see datasets/multi30k_en_de/SOURCE.md).

Line i of the source file translates line i of the target file; both are already tokenized
(whitespace-separated). Files may be gzipped (".gz"). As with the other readers, every
malformed line is an error, never skipped: dropping one side of a pair would misalign the rest.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from seqserve.services.trainer.errors import DataFormatError

Pair = tuple[list[str], list[str]]


def read_parallel(src_path: Path, tgt_path: Path) -> list[Pair]:
    """(source tokens, target tokens) per aligned line pair."""
    src_lines, tgt_lines = _read_lines(Path(src_path)), _read_lines(Path(tgt_path))
    if len(src_lines) != len(tgt_lines):
        raise DataFormatError(
            src_path,
            f"has {len(src_lines)} lines but its aligned file {tgt_path} has {len(tgt_lines)}",
        )
    if not src_lines:
        raise DataFormatError(src_path, "no sentence pairs")
    return list(zip(src_lines, tgt_lines, strict=True))


def read_pair_lines(path: Path) -> list[Pair]:
    """Pairs from one file, a tab between the tokenized source and target (translate feedback)."""
    pairs = []
    for number, line in enumerate(_read_bytes(Path(path)).decode("utf-8").splitlines(), start=1):
        source, tab, target = line.partition("\t")
        if not tab or not source.split() or not target.split():
            raise DataFormatError(path, "expected source<TAB>target, both non-empty", number)
        pairs.append((source.split(), target.split()))
    if not pairs:
        raise DataFormatError(path, "no sentence pairs")
    return pairs


def _read_lines(path: Path) -> list[list[str]]:
    """Tokens of every line; empty or undecodable lines raise, naming file and 1-based line."""
    raw_lines = _read_bytes(path).split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the final newline ends the last line; it does not start another
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            tokens = raw.decode("utf-8").split()
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, f"invalid UTF-8 at byte {exc.start}", number) from None
        if not tokens:
            raise DataFormatError(path, "empty sentence", number)
        lines.append(tokens)
    return lines


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataFormatError(path, f"not a valid gzip file: {exc}") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read file: {exc.strerror}") from exc
