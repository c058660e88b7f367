"""What a served batch feeds the drift statistics: every input of an interactive job, and of a
corpus batch's chunk at most `per_chunk` inputs spread over it, each with its own result."""

from __future__ import annotations

import uuid
from typing import Any

from seqserve.services.worker.drift import DriftMonitor
from seqserve.services.worker.model_cache import VersionInfo
from seqserve.shared.db.base import utcnow
from seqserve.shared.jobs.repository import Claim, ClaimedJob


class _Recording(DriftMonitor):
    def __init__(self, per_chunk: int) -> None:
        super().__init__(per_chunk=per_chunk)
        self.seen: list[tuple[list[str], list[Any]]] = []

    def observe(self, version: VersionInfo, kind: str, handler: Any, inputs: list[str],
                results: list[dict[str, Any]]) -> None:
        self.seen.append((inputs, results))


def _job(inputs: list[str], batch_id: uuid.UUID | None) -> ClaimedJob:
    now = utcnow()
    return ClaimedJob(Claim(uuid.uuid4(), 1, now), {}, inputs, now, False, "low", batch_id=batch_id)


def test_a_chunk_feeds_at_most_per_chunk_inputs_and_an_interactive_job_all_of_its_own() -> None:
    monitor = _Recording(per_chunk=16)
    chunk = _job([f"s{i}" for i in range(100)], uuid.uuid4())
    interactive = _job(["a", "b", "c"], None)
    version = VersionInfo(1, "m", 1, "/nowhere", "0" * 64)
    monitor.observe_jobs(version, "classify", None, [(chunk, [{"n": i} for i in range(100)]),
                                                     (interactive, [{"n": "a"}, {"n": "b"}, {"n": "c"}])])
    ((inputs, results),) = monitor.seen
    sampled = [f"s{i}" for i in range(0, 100, 7)]  # ceil(100 / 16) = 7: 15 inputs, first to last
    assert inputs == [*sampled, "a", "b", "c"]
    assert results == [*({"n": i} for i in range(0, 100, 7)), {"n": "a"}, {"n": "b"}, {"n": "c"}]
    small = _job(["x", "y"], uuid.uuid4())  # a chunk under the bound feeds all of itself
    monitor.observe_jobs(version, "classify", None, [(small, [{"n": "x"}, {"n": "y"}])])
    assert monitor.seen[-1] == (["x", "y"], [{"n": "x"}, {"n": "y"}])
