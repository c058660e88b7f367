"""Job kinds: the params each accepts and the batch key of a job (kinds come from
`seqserve.shared.tasks`, the one registry).

The API validates params here before anything is stored; the worker receives them with
defaults filled in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from seqserve.shared.jobs.params import JobParams
from seqserve.shared.tasks import JOB_KINDS, kinds_for_task

__all__ = ["JOB_KINDS", "batch_key", "kinds_for_task", "params_schema", "validate_params"]


def params_schema(kind: str) -> type[JobParams]:
    return JOB_KINDS[kind][1].params


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params with defaults filled in; raises pydantic.ValidationError on a bad one."""
    return params_schema(kind).model_validate(params).model_dump()


def batch_key(kind: str, params: dict[str, Any]) -> str:
    """Jobs of one model version with equal batch keys (same kind, same validated params)
    can share a forward pass."""
    canonical = json.dumps([kind, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
