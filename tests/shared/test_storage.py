"""The file store's growing files: appended to from a recorded size, sealed under the real name."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from seqserve.shared.storage import FileStore


def test_a_growing_file_resumes_at_the_recorded_size_even_once_sealed(tmp_path: Path) -> None:
    store, file_id = FileStore(tmp_path), uuid.uuid4()
    with store.appending(file_id, 0) as out:
        out.write(b"one\ntwo\n")
    assert not store.path(file_id).exists()  # readers see nothing until it is sealed
    with store.appending(file_id, 8) as out:
        out.write(b"three\n-half a line")  # a writer that died before recording its size
    with store.appending(file_id, 8) as out:
        out.write(b"three\n")
    written = store.seal(file_id)
    assert store.path(file_id).read_bytes() == b"one\ntwo\nthree\n"
    assert (written.bytes, written.lines, written.sha256) == (14, 3, hashlib.sha256(b"one\ntwo\nthree\n").hexdigest())
    # Sealed, but the step that sealed it died before its commit: the next one starts from 8 again.
    with store.appending(file_id, 8) as out:
        out.write(b"four\n")
    assert store.seal(file_id).lines == 3 and store.path(file_id).read_bytes() == b"one\ntwo\nfour\n"


def test_a_growing_file_shorter_than_recorded_is_an_error(tmp_path: Path) -> None:
    store, file_id = FileStore(tmp_path), uuid.uuid4()
    with store.appending(file_id, 0) as out:
        out.write(b"one\n")
    with pytest.raises(OSError, match="fewer than the 10 bytes"), store.appending(file_id, 10):
        pass
