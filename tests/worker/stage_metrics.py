"""What the handler template observed into seqserve_handler_stage_seconds (this process's registry)."""

from __future__ import annotations

from prometheus_client import REGISTRY

STAGES = ("preprocess", "infer", "postprocess")


def stage_counts(kind: str) -> list[float]:
    """Observations so far of each stage (in STAGES order) for `kind`."""
    labels = [{"kind": kind, "stage": stage} for stage in STAGES]
    return [REGISTRY.get_sample_value("seqserve_handler_stage_seconds_count", label) or 0.0 for label in labels]


def one_more(counts: list[float]) -> list[float]:
    return [count + 1 for count in counts]
