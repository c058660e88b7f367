"""Checkpoint I/O: atomic, hashed writes and verify-before-deserialise reads.

A checkpoint is one torch-serialised dict holding only primitives, lists, dicts and tensors,
so `torch.load(weights_only=True)` can read it without running pickled code:

    {"format": CHECKPOINT_FORMAT, "task": "classify", "model_config": dataclasses.asdict(cfg),
     "vocab": list[str], "labels": list[str], "state_dict": unwrapped_module.state_dict(),
     "metrics": dict, "data_fingerprint": str, "train_config": dict}
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "seqserve-checkpoint/1"
_CHUNK = 1 << 20


class ChecksumMismatchError(ValueError):
    """The file's sha256 is not the one the registry recorded; it must not be loaded."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> tuple[str, int]:
    """Write `payload` to `path` atomically; return (sha256 hex, size in bytes) of the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file sits beside the target so os.replace is a same-filesystem rename: readers
    # see either the old file or the complete new one, never a half-written checkpoint.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o644)  # mkstemp makes it owner-only; workers may run as another user
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        digest, size = sha256_file(tmp_name), os.path.getsize(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest, size


def load_checkpoint(path: Path, expected_sha256: str | None) -> dict[str, Any]:
    """Read a checkpoint onto the CPU, refusing it if its sha256 differs from `expected_sha256`.

    The bytes are hashed and deserialised from the same in-memory copy, so a file swapped
    between the check and the load cannot slip through.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ChecksumMismatchError(path, expected_sha256, actual)
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (format: {found!r})")
    return payload
