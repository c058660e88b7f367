"""A batch's end: the output file (one line per successful input, in input order), the error
file (malformed, failed, expired and cancelled inputs, in input order) and, for tag, the output
as CoNLL-U. Written by streaming the input file beside the batch's job rows in input order
(both a few rows at a time: memory stays flat in the corpus size). The files' ids derive from
the batch's, so a finalize re-run after a crash overwrites them instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from seqserve.shared.batches import repository as batches_repo
from seqserve.shared.batches.formats import Item, Limits, Malformed, conllu_sentence, read
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.batch_models import Batch, BatchStatus, StoredFile
from seqserve.shared.db.models import JobStatus
from seqserve.shared.metrics import BATCH_INPUTS_TOTAL
from seqserve.shared.storage import FileStore, Written

# What an input not run to the end is, by how its batch ended.
_UNFINISHED = {BatchStatus.expired: ("expired", "the batch's completion window passed before this input ran"),
               BatchStatus.cancelled: ("cancelled", "the batch was cancelled before this input ran"),
               BatchStatus.completed: ("failed", "this input's job ended without a result")}


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class _CountingFile:
    """A writer that hashes and counts what passes through it (the file row's columns)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.digest, self.bytes, self.lines = out, hashlib.sha256(), 0, 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.digest.update(data)
        self.bytes += len(data)
        self.lines += data.count(b"\n")

    def written(self) -> Written:
        return Written(self.bytes, self.digest.hexdigest(), self.lines)


@dataclass
class _Outcome:
    """Per input: its result, or (code, message) for the error file."""

    item: Item
    result: Any = None
    code: str | None = None
    message: str | None = None


def _outcomes(session: Session, batch: Batch, source: BinaryIO, limits: Limits, end: BatchStatus
              ) -> Iterator[_Outcome | Malformed]:
    chunks = batches_repo.chunks_in_order(session, batch.id)
    chunk = next(chunks, None)
    unfinished = _UNFINISHED[end]
    for entry in read(source, batch.input_format, limits):
        if isinstance(entry, Malformed):
            yield entry
            continue
        while chunk is not None and chunk.first + chunk.size <= entry.index:
            chunk = next(chunks, None)
        if chunk is None or chunk.first > entry.index:
            yield _Outcome(entry, code=unfinished[0], message=unfinished[1])
        elif chunk.status == JobStatus.succeeded.value and chunk.result is not None:
            yield _Outcome(entry, result=chunk.result[entry.index - chunk.first])
        elif chunk.status == JobStatus.failed.value:
            yield _Outcome(entry, code="failed", message=chunk.error or "the job failed")
        else:
            yield _Outcome(entry, code=unfinished[0], message=unfinished[1])


def _file_row(batch: Batch, purpose: str, file_format: str, extension: str, written: Written) -> StoredFile:
    return StoredFile(id=uuid.uuid5(batch.id, purpose), team=batch.team, filename=f"batch_{batch.id}_{purpose}.{extension}",
                      format=file_format, purpose=purpose, bytes=written.bytes, sha256=written.sha256,
                      lines=written.lines, created_at=utcnow())


def finalize(session: Session, batch: Batch, store: FileStore, limits: Limits, end: BatchStatus) -> None:
    """Write the batch's files and end it `end` (completed, expired or cancelled)."""
    batch.status, batch.finalizing_at = BatchStatus.finalizing.value, batch.finalizing_at or utcnow()
    ids = {purpose: uuid.uuid5(batch.id, purpose) for purpose in ("output", "error", "conllu")}
    counts: Counter[str] = Counter()
    with ExitStack() as stack:
        source = stack.enter_context(store.open(batch.input_file_id))
        output = _CountingFile(stack.enter_context(store.writer(ids["output"])))
        errors = _CountingFile(stack.enter_context(store.writer(ids["error"])))
        conllu = _CountingFile(stack.enter_context(store.writer(ids["conllu"]))) if batch.kind == "tag" else None
        for outcome in _outcomes(session, batch, source, limits, end):
            if isinstance(outcome, Malformed):
                counts["malformed"] += 1
                errors.write(_line({"custom_id": outcome.custom_id, "line": outcome.line,
                                    "error": {"code": "malformed", "message": outcome.message}}))
            elif outcome.code is None:
                counts["completed"] += 1
                output.write(_line({"custom_id": outcome.item.custom_id, "result": outcome.result}))
                if conllu is not None:
                    conllu.write(conllu_sentence(outcome.item, outcome.result).encode())
            else:
                counts[outcome.code] += 1
                errors.write(_line({"custom_id": outcome.item.custom_id, "line": outcome.item.line,
                                    "error": {"code": outcome.code, "message": outcome.message}}))
    batches_repo.add_file(session, _file_row(batch, "output", "jsonl", "jsonl", output.written()))
    batches_repo.add_file(session, _file_row(batch, "error", "jsonl", "jsonl", errors.written()))
    batch.output_file_id, batch.error_file_id = ids["output"], ids["error"]
    if conllu is not None:
        batches_repo.add_file(session, _file_row(batch, "conllu", "conllu", "conllu", conllu.written()))
        batch.conllu_file_id = ids["conllu"]
    for status, number in counts.items():
        BATCH_INPUTS_TOTAL.labels(status).inc(number)
    batch.completed, batch.total = counts["completed"], sum(counts.values())
    batch.failed = batch.total - batch.completed
    batch.status = end.value
    setattr(batch, f"{end.value}_at", utcnow())
