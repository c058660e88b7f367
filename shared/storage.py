"""The file store of corpus jobs: uploaded inputs and the output and error files batches write.

One small interface, a directory by default (SEQSERVE_FILE_DIR, default artifact_dir/files). Every
API process and worker must see the same directory: on several machines, a shared volume (NFS,
a ReadWriteMany PVC, a bucket mounted with s3fs/gcsfuse). Files are written under a temporary
name and renamed when complete, so a reader never sees half a file and a crashed writer leaves
none behind under the real name. A batch's output files grow under a `.growing` name while its
chunks end (`appending`, truncated to the size the caller last recorded, so a writer that died
mid-append leaves nothing twice) and get their real name once complete (`seal`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from seqserve.shared.config import Settings

CHUNK_BYTES = 1 << 16


class TooLarge(Exception):
    """The content passed the size limit; nothing was kept."""


@dataclass(frozen=True)
class Written:
    bytes: int
    sha256: str
    lines: int


class FileStore:
    """Files by id, in one directory (two levels of fan-out keep directories small)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: Settings) -> FileStore:
        assert settings.file_dir is not None  # filled in by Settings
        return cls(settings.file_dir)

    def path(self, file_id: uuid.UUID) -> Path:
        name = file_id.hex
        return self.root / name[:2] / name

    def write(self, file_id: uuid.UUID, chunks: Iterable[bytes], max_bytes: int | None = None) -> Written:
        """Store `chunks` as the file's content, hashing and counting lines on the way."""
        digest, size, lines, last = hashlib.sha256(), 0, 0, b"\n"
        with self.writer(file_id) as out:
            for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(f"more than {max_bytes} bytes")
                digest.update(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
                out.write(chunk)
        # A last line without its newline is a line too.
        return Written(size, digest.hexdigest(), lines + (last != b"\n"))

    @contextmanager
    def writer(self, file_id: uuid.UUID) -> Iterator[BinaryIO]:
        """A binary file to write the content into; it appears under its id once complete."""
        final = self.path(file_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f"{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
        try:
            with open(partial, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    def _growing(self, file_id: uuid.UUID) -> Path:
        final = self.path(file_id)
        return final.with_name(f"{final.name}.growing")

    @contextmanager
    def appending(self, file_id: uuid.UUID, size: int) -> Iterator[BinaryIO]:
        """A growing file cut back to `size` bytes (what the caller recorded as durably
        written: anything past it is a dead writer's and goes), positioned at its end; flushed
        and fsynced on a clean exit, so the caller may then record its new size."""
        growing = self._growing(file_id)
        growing.parent.mkdir(parents=True, exist_ok=True)
        if not growing.exists() and self.path(file_id).exists():
            os.replace(self.path(file_id), growing)  # sealed, but its end was never recorded
        with open(growing, "r+b" if growing.exists() else "w+b") as out:
            if out.seek(0, os.SEEK_END) < size:
                raise OSError(f"{growing} holds fewer than the {size} bytes recorded")
            out.truncate(size)
            out.seek(size)
            yield out
            out.flush()
            os.fsync(out.fileno())

    def seal(self, file_id: uuid.UUID) -> Written:
        """Give a grown file its real name (readers see it only complete); its size, hash, lines."""
        growing = self._growing(file_id)
        if growing.exists():
            os.replace(growing, self.path(file_id))
        digest, size, lines = hashlib.sha256(), 0, 0
        for chunk in self.chunks(file_id):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
        return Written(size, digest.hexdigest(), lines)

    def open(self, file_id: uuid.UUID) -> BinaryIO:
        return open(self.path(file_id), "rb")

    def chunks(self, file_id: uuid.UUID, start: int = 0) -> Iterator[bytes]:
        """The content from byte `start`, in chunks (for a streamed response)."""
        with self.open(file_id) as source:
            source.seek(start)
            while chunk := source.read(CHUNK_BYTES):
                yield chunk

    def delete(self, file_id: uuid.UUID) -> None:
        self.path(file_id).unlink(missing_ok=True)
