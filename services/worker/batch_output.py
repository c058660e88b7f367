"""A batch's output files: the output file (one line per successful input, in input order), the
error file (malformed, failed, expired and cancelled inputs, in input order) and, for tag, the
output as CoNLL-U. Written by streaming the input file beside the batch's job rows in input
order (both a few rows at a time: memory stays flat in the corpus size).

The files grow while the batch runs (SEQSERVE_BATCH_OUTPUT_AS_CHUNKS_END): each driver step
appends the lines of the chunks that ended, up to the first one still open, and records in the
batch row (`output_progress`, in the step's transaction) where the input file was left and how
many bytes each file durably holds. A step that dies before its commit leaves bytes past the
recorded sizes; the next one cuts them off and writes those lines again, so every line is in
its file exactly once. The batch's end writes what is left (the unfinished inputs by how it
ended) and gives the files their real names. The files' ids derive from the batch's.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from itertools import chain
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from seqserve.shared import json_codec
from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.batches.formats import Item, Limits, Malformed, Position, conllu_sentence, read
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.batch_models import Batch, BatchStatus, StoredFile
from seqserve.shared.db.models import JobStatus
from seqserve.shared.metrics import BATCH_INPUTS_TOTAL
from seqserve.shared.storage import FileStore, Written

# What an input not run to the end is, by how its batch ended.
_UNFINISHED = {BatchStatus.expired: ("expired", "the batch's completion window passed before this input ran"),
               BatchStatus.cancelled: ("cancelled", "the batch was cancelled before this input ran"),
               BatchStatus.completed: ("failed", "this input's job ended without a result")}
_FILE_FORMATS = {"output": ("jsonl", "jsonl"), "error": ("jsonl", "jsonl"), "conllu": ("conllu", "conllu")}


def _line(value: dict[str, Any]) -> bytes:
    return json_codec.dumps_line(value)


@dataclass
class OutputProgress:
    """The batch row's `output_progress`: where the next line comes from in the input file
    (None: every entry is written), each file's durable size, and the inputs written per outcome."""

    position: Position | None = field(default_factory=Position)
    sizes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, batch: Batch) -> OutputProgress:
        value = batch.output_progress
        if value is None:
            return cls()
        position = value["position"]
        return cls(None if position is None else Position(**position), dict(value["sizes"]), dict(value["counts"]))

    def row(self) -> dict[str, Any]:
        return {"position": None if self.position is None else asdict(self.position), "sizes": self.sizes,
                "counts": self.counts}


@dataclass
class _Outcome:
    """Per input: its result, or (code, message) for the error file."""

    item: Item
    result: Any = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class _Open:
    """Writing stops here: at the first input whose chunk has not ended (or is not submitted
    yet), or (`bounded`) at the first chunk past the step's bound."""

    position: Position
    bounded: bool = False


def _outcomes(session: Session, batch: Batch, source: BinaryIO, limits: Limits, start: Position,
              end: BatchStatus | None, bound: int | None) -> Iterator[_Outcome | Malformed | _Open]:
    """The entries from `start` on with their outcomes. `end` None (the batch runs): up to the
    first open chunk or the first chunk past `bound` inputs; either starts a chunk, so the
    chunks from `start.index` on are the ones to read next time."""
    # A bounded step uses the chunks within its bound and looks at the next one: fetched two at a
    # time, since every fetched row's result is decoded (a 512-sentence tag result: ~3 ms). With
    # 32 rows a fetch, a step behind the workers decoded every ended chunk past its bound, and
    # the next step those again (docs/benchmarks/batches.md, 2026-12-08).
    chunks = batches_repo.chunks_in_order(session, batch.id, start.index,
                                          per_fetch=2 if end is None and bound is not None else 32)
    chunk = next(chunks, None)
    for entry in read(source, batch.input_format, limits, start):
        if isinstance(entry, Malformed):
            yield entry
            continue
        while chunk is not None and chunk.first + chunk.size <= entry.index:
            chunk = next(chunks, None)
        covered = chunk is not None and chunk.first <= entry.index
        if end is None and bound is not None and covered and chunk is not None and entry.index == chunk.first \
                and entry.index - start.index >= bound:
            yield _Open(entry.position, bounded=True)
            return
        if covered and chunk is not None and chunk.status == JobStatus.succeeded.value and chunk.result is not None:
            yield _Outcome(entry, result=chunk.result[entry.index - chunk.first])
        elif covered and chunk is not None and chunk.status == JobStatus.failed.value:
            yield _Outcome(entry, code="failed", message=chunk.error or "the job failed")
        elif end is None:
            yield _Open(entry.position)
            return
        else:
            code, message = _UNFINISHED[end]
            yield _Outcome(entry, code=code, message=message)


def _file_ids(batch: Batch) -> dict[str, uuid.UUID]:
    purposes = ("output", "error", "conllu") if batch.kind == "tag" else ("output", "error")
    return {purpose: uuid.uuid5(batch.id, purpose) for purpose in purposes}


def _write(files: dict[str, BinaryIO], outcome: _Outcome | Malformed, counts: Counter[str]) -> None:
    if isinstance(outcome, Malformed):
        counts["malformed"] += 1
        files["error"].write(_line({"custom_id": outcome.custom_id, "line": outcome.line,
                                    "error": {"code": "malformed", "message": outcome.message}}))
    elif outcome.code is None:
        counts["completed"] += 1
        files["output"].write(_line({"custom_id": outcome.item.custom_id, "result": outcome.result}))
        if "conllu" in files:
            files["conllu"].write(conllu_sentence(outcome.item, outcome.result).encode())
    else:
        counts[outcome.code] += 1
        files["error"].write(_line({"custom_id": outcome.item.custom_id, "line": outcome.item.line,
                                    "error": {"code": outcome.code, "message": outcome.message}}))


def append(session: Session, batch: Batch, store: FileStore, limits: Limits, end: BatchStatus | None = None,
           bound: int | None = None) -> bool:
    """Append the lines from where the files were left: up to the first open chunk, about
    `bound` inputs at most (`end` None), or all that remain with the unfinished inputs named
    by `end`. Records the new progress in the batch row; True: stopped at the bound."""
    progress = OutputProgress.of(batch)
    if progress.position is None:
        return False
    counts: Counter[str] = Counter(progress.counts)
    with ExitStack() as stack:
        source = stack.enter_context(store.open(batch.input_file_id))
        outcomes = _outcomes(session, batch, source, limits, progress.position, end, bound)
        first = next(outcomes, None)
        if isinstance(first, _Open) and batch.output_progress is not None:
            return False  # nothing ended since the last step: leave the files alone
        files = {purpose: stack.enter_context(store.appending(file_id, progress.sizes.get(purpose, 0)))
                 for purpose, file_id in _file_ids(batch).items()}
        stop: _Open | None = None
        for outcome in chain([first] if first is not None else [], outcomes):
            if isinstance(outcome, _Open):
                stop = outcome
                break
            _write(files, outcome, counts)
        sizes = {purpose: out.tell() for purpose, out in files.items()}
    # The files are fsynced: the sizes may be recorded (committed with the step).
    progress.position = None if stop is None else stop.position
    progress.sizes, progress.counts = sizes, dict(counts)
    batch.output_progress = progress.row()
    return stop is not None and stop.bounded


def _file_row(batch: Batch, purpose: str, file_id: uuid.UUID, written: Written) -> StoredFile:
    file_format, extension = _FILE_FORMATS[purpose]
    return StoredFile(id=file_id, team=batch.team, filename=f"batch_{batch.id}_{purpose}.{extension}",
                      format=file_format, purpose=purpose, bytes=written.bytes, sha256=written.sha256,
                      lines=written.lines, created_at=utcnow())


def finalize(session: Session, batch: Batch, store: FileStore, limits: Limits, end: BatchStatus) -> None:
    """Write what is left of the batch's files, seal them, and end it `end` (completed,
    expired or cancelled)."""
    batch.status, batch.finalizing_at = BatchStatus.finalizing.value, batch.finalizing_at or utcnow()
    append(session, batch, store, limits, end)
    for purpose, file_id in _file_ids(batch).items():
        batches_repo.add_file(session, _file_row(batch, purpose, file_id, store.seal(file_id)))
        setattr(batch, f"{purpose}_file_id", file_id)
    counts = OutputProgress.of(batch).counts
    for status, number in counts.items():
        BATCH_INPUTS_TOTAL.labels(status).inc(number)
    batch.completed, batch.total = counts.get("completed", 0), sum(counts.values())
    batch.failed = batch.total - batch.completed
    batch.status = end.value
    setattr(batch, f"{end.value}_at", utcnow())
