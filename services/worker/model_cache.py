"""Loaded models of this process, keyed by registry version id, bounded LRU.

A version row never changes, so a cached handler stays valid forever; an alias move takes
effect at once because new jobs resolve (at submission) to another version id.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqserve.services.worker.backends import attach_backend
from seqserve.services.worker.device import pick_device
from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.config import get_settings
from seqserve.shared.metrics import MODEL_LOAD_ERRORS_TOTAL, MODEL_LOAD_SECONDS, MODELS_LOADED


@dataclass(frozen=True)
class VersionInfo:
    version_id: int
    model_name: str
    version: int
    checkpoint_uri: str
    sha256: str


class ModelCache:
    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._handlers: OrderedDict[int, Any] = OrderedDict()
        # The warm-up thread loads beside the task thread: one load per version at a time.
        self._lock = threading.Lock()

    def get(self, info: VersionInfo) -> Any:
        with self._lock:
            return self._get(info)

    def _get(self, info: VersionInfo) -> Any:
        handler = self._handlers.get(info.version_id)
        if handler is not None:
            self._handlers.move_to_end(info.version_id)
            return handler
        handler = self._load(info)
        self._handlers[info.version_id] = handler
        while len(self._handlers) > self.capacity:
            self._handlers.popitem(last=False)
        MODELS_LOADED.set(len(self._handlers))
        return handler

    def _load(self, info: VersionInfo) -> Any:
        started = time.perf_counter()
        try:
            payload = load_checkpoint(Path(info.checkpoint_uri), expected_sha256=info.sha256)
            handler = build_handler(payload, pick_device(get_settings()))
            attach_backend(handler, Path(info.checkpoint_uri), info.sha256, get_settings())
        except Exception:
            MODEL_LOAD_ERRORS_TOTAL.labels(info.model_name, str(info.version)).inc()
            raise
        MODEL_LOAD_SECONDS.labels(info.model_name, str(info.version)).observe(time.perf_counter() - started)
        return handler

    def __len__(self) -> int:
        return len(self._handlers)
