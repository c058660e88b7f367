"""One handler per task kind, chosen by the checkpoint's own "task" field."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from seqserve.services.worker.handlers.classify import ClassifyHandler
from seqserve.services.worker.handlers.embeddings import EmbeddingsHandler
from seqserve.services.worker.handlers.generate import LanguageModelHandler
from seqserve.services.worker.handlers.tag import TagHandler
from seqserve.services.worker.handlers.translate import TranslateHandler
from seqserve.shared import tasks
from seqserve.shared.config import Settings


class Handler(Protocol):
    task: str
    step_events: bool
    stage_seconds: dict[str, float]

    def run(self, inputs: list[str], params: dict[str, Any], kind: str | None = ...) -> list[dict[str, Any]]: ...


HANDLERS: dict[str, Any] = {name: tasks.load(spec.handler) for name, spec in tasks.TASKS.items()}


def build_handler(payload: dict[str, Any], device: torch.device | str, settings: Settings | None = None) -> Handler:
    """Build the handler for a loaded checkpoint payload (see seqserve.shared.checkpoint);
    its rows per forward pass come from `settings` (default: the process's)."""
    task = payload.get("task")
    if task not in HANDLERS:
        raise ValueError(f"no handler for task {task!r}; known tasks: {sorted(HANDLERS)}")
    return HANDLERS[task].from_checkpoint(payload, device, settings)


__all__ = ["HANDLERS", "ClassifyHandler", "EmbeddingsHandler", "Handler", "LanguageModelHandler", "TagHandler",
           "TranslateHandler", "build_handler"]
