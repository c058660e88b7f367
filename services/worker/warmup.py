"""Warm-up: a thread in each inference process loads the versions rollouts need (a pending
promotion first, then what rollout aliases serve) and runs a few fixed inputs per kind
through them before any job needs them, then reports warm in Redis. A promotion waits for
those reports (seqserve.shared.rollouts.promotion), so its first real job finds the model
loaded and its code paths run once (Triton's model_warmup, TF Serving's warm-up records)."""

from __future__ import annotations

import logging
import os
import socket
import threading

from seqserve.services.worker.context import WorkerContext
from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs.kinds import kinds_for_task, validate_params
from seqserve.shared.rollouts import warm
from seqserve.shared.rollouts.agreement import SHADOW_KINDS
from seqserve.shared.rollouts.state import versions_to_warm

log = logging.getLogger(__name__)

# A few fixed inputs per kind: short and long, so the length-sorted batching paths run too.
WARMUP_INPUTS = {
    "classify": ["a gorgeous , witty film .", "the plot is dull , the acting worse and the ending never comes ."],
    "tag": ["The quick brown fox jumps over the lazy dog .", "I saw her yesterday in Paris ."],
    "score": ["the company said it expects sales to rise .", "the market fell sharply"],
    "generate": ["the company said"],
    "translate": ["a man is riding a bike .", "two children are playing in the park near a big tree ."],
}
WARMUP_PARAMS = {"generate": {"max_tokens": 4}, "translate": {"max_tokens": 20}}


def run_warmup_inputs(handler: object, task: str) -> None:
    for kind in kinds_for_task(task):
        if kind in SHADOW_KINDS and kind in WARMUP_INPUTS:
            params = validate_params(kind, WARMUP_PARAMS.get(kind, {}))
            handler.run(WARMUP_INPUTS[kind], params, kind=kind)  # type: ignore[attr-defined]


class Warmer:
    """One per inference process, owned by it; `tick` is one look (tests call it directly)."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.warmed: set[int] = set()
        self._stop = threading.Event()

    def tick(self) -> list[int]:
        """Warm what is wanted and not yet warm here; returns the version ids warmed now."""
        with session_scope() as session:
            wanted = versions_to_warm(session)[: self.context.models.capacity]
        done = []
        for version_id, task in wanted:
            if version_id in self.warmed:
                continue
            handler = self.context.models.get(self.context.version(version_id))
            run_warmup_inputs(handler, task)
            self.warmed.add(version_id)
            done.append(version_id)
            if self.context.redis is not None:
                warm.report(self.context.redis, self.name, version_id, sorted(self.warmed))
        return done

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bad checkpoint must not kill the thread; jobs report it themselves
                log.exception("warm-up failed")
            self._stop.wait(self.context.settings.rollout_warmup_poll_seconds)

    def start(self) -> None:
        threading.Thread(target=self.run_forever, name="seqserve-warmup", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
