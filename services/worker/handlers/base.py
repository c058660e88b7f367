"""What every handler shares: per-stage timings of its last run, and the checkpoint task check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar


class StagedHandler:
    task: ClassVar[str]
    # Seconds spent in each stage (preprocess, infer, postprocess) by the last run().
    stage_seconds: dict[str, float]

    @classmethod
    def check_task(cls, payload: dict[str, Any]) -> None:
        if payload.get("task") != cls.task:
            raise ValueError(f"checkpoint task is {payload.get('task')!r}, not {cls.task!r}")

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] = time.perf_counter() - start
