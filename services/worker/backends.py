"""The inference backend of a loaded model version: torch, or its ONNX graphs in ONNX Runtime.

`SEQSERVE_INFERENCE_BACKEND` chooses; `auto` takes, per task, what measured fastest on CPU
(AUTO below, numbers in docs/benchmarks/backends.md). CUDA always runs torch. A checkpoint is
exported once: the graphs are cached in a directory named by the checkpoint's sha256 (beside
the checkpoint, or under `SEQSERVE_ONNX_CACHE_DIR`) with a manifest of every graph's sha256,
checked on every load; a mismatch is re-exported. An export that fails is logged and the
version runs on torch, so a backend problem never fails a job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seqserve.services.worker.model_calls import (
    GraphCall,
    GraphClassifier,
    GraphLanguageModelCalls,
    GraphSeq2Seq,
    GraphTagger,
    OrtGraph,
)
from seqserve.shared.config import Settings
from seqserve.shared.nn.onnx_export import export_task

log = logging.getLogger(__name__)

# Per task, the faster backend of docs/benchmarks/backends.md (1 thread, batch 1 to 64, CPU).
AUTO: dict[str, str] = {"classify": "onnxruntime", "tag": "onnxruntime", "generate": "onnxruntime",
                        "translate": "onnxruntime"}
# Rows per ONNX Runtime pass on a CPU (the handler's chunks of length-sorted rows): a dense pass
# computes every padded step, so smaller chunks, each padded to its own longest row, were faster
# there (classify at batch 64: 16 rows 1146 sentences/s, 64 rows 474; docs/benchmarks/backends.md).
ONNX_CHUNK_ROWS: dict[str, int] = {"classify": 16, "tag": 16}  # tag re-measured with native nodes: 16 still best
# Part of the cache key: graphs exported by an older exporter are never reused.
EXPORT_VERSION = 2
_MANIFEST = "manifest.json"


def choose_backend(task: str, device_type: str, settings: Settings) -> str:
    """"torch" or "onnxruntime" for a model of `task` on a device of `device_type`."""
    if device_type != "cpu" or task not in AUTO:
        return "torch"  # CUDA runs torch; embeddings are table lookups
    if settings.inference_backend == "auto":
        return AUTO[task]
    return settings.inference_backend


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class OnnxCache:
    """Exported graphs per checkpoint sha256, verified on read, published by one rename."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def directory(self, checkpoint: Path, sha256: str) -> Path:
        base = self.root if self.root is not None else checkpoint.parent / ".onnx"
        return base / f"{sha256}-v{EXPORT_VERSION}"

    def read(self, directory: Path, sha256: str) -> dict[str, bytes] | None:
        """The graphs, if the directory holds a complete export of this checkpoint; else None."""
        try:
            manifest = json.loads((directory / _MANIFEST).read_text())
            if manifest["checkpoint_sha256"] != sha256:
                return None
            graphs = {name: (directory / f"{name}.onnx").read_bytes() for name in manifest["graphs"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if any(_sha256(graphs[name]) != digest for name, digest in manifest["graphs"].items()):
            return None
        return graphs

    def write(self, directory: Path, sha256: str, graphs: dict[str, bytes]) -> None:
        """Publish `graphs`: written into a temporary directory, then renamed into place, so a
        reader sees a complete export or none; of two workers exporting at once, one rename
        wins and the other's copy is dropped (both are exports of the same checkpoint)."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            for name, data in graphs.items():
                (staging / f"{name}.onnx").write_bytes(data)
            manifest = {"checkpoint_sha256": sha256, "graphs": {n: _sha256(d) for n, d in graphs.items()}}
            (staging / _MANIFEST).write_text(json.dumps(manifest, indent=1))
            os.chmod(staging, 0o755)  # mkdtemp makes it owner-only; workers may run as another user
            try:
                os.rename(staging, directory)
            except OSError:
                if self.read(directory, sha256) is None:
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def discard(self, directory: Path) -> None:
        """Move a bad export aside (one rename, so no reader sees it half-deleted), then delete it."""
        if not directory.exists():
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{directory.name}.bad.", dir=directory.parent))
        with contextlib.suppress(OSError):  # another worker moved it first
            os.rename(directory, trash / "export")
        shutil.rmtree(trash, ignore_errors=True)

    def graphs(self, checkpoint: Path, sha256: str, task: str, model: Any) -> dict[str, bytes]:
        """The checkpoint's graphs, exported now if the cache has no verified copy."""
        directory = self.directory(checkpoint, sha256)
        graphs = self.read(directory, sha256)
        if graphs is not None:
            return graphs
        if directory.exists():
            log.warning("ONNX export in %s does not match its manifest; exporting again", directory)
            self.discard(directory)
        graphs = export_task(task, model)
        try:
            self.write(directory, sha256, graphs)
        except OSError:
            # A read-only checkpoint volume: serve this export from memory, export again next load.
            log.warning("cannot cache the ONNX export in %s; using it uncached", directory, exc_info=True)
        return graphs


def attach_backend(handler: Any, checkpoint: Path, sha256: str, settings: Settings) -> str:
    """Point the handler's model calls at the chosen backend; returns the backend it runs on."""
    if choose_backend(handler.task, handler.device.type, settings) == "torch":
        return "torch"
    try:
        graphs = OnnxCache(settings.onnx_cache_dir).graphs(checkpoint, sha256, handler.task, handler.model)
        # Unset threads mean 1 here: 2 intra-op threads per process ran 3-25x slower than 1 on a
        # busy 2-core machine (docs/benchmarks/backends.md, "Threads and processes").
        threads = settings.torch_threads or 1
        sessions = {name: OrtGraph(data, threads) for name, data in graphs.items()}
        attach_graphs(handler, sessions)
        if handler.task in ONNX_CHUNK_ROWS:
            handler.rows_per_pass = ONNX_CHUNK_ROWS[handler.task]
    except Exception:
        # Logged once: a version is loaded once per process (services/worker/model_cache.py).
        log.exception("ONNX backend unavailable for %s (%s); running it on torch", checkpoint, handler.task)
        return "torch"
    return "onnxruntime"


def attach_graphs(handler: Any, graphs: Mapping[str, GraphCall]) -> None:
    """Swap the handler's model calls for the task's graphs (ONNX sessions, or dense modules)."""
    task, model = handler.task, handler.model
    if task == "classify":
        handler.forward = GraphClassifier(graphs)
    elif task == "tag":
        handler.forward = GraphTagger(graphs)
    elif task == "generate":
        handler.calls = GraphLanguageModelCalls(graphs, model)
    elif task == "translate":
        handler.decoder = GraphSeq2Seq(graphs, model.config)
    else:
        raise ValueError(f"no ONNX graphs for task {task!r}")
