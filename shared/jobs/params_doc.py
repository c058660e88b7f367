"""The params of every job kind, with their defaults and descriptions, for the OpenAPI
document: `JobCreate.params` is an open object there (its model depends on `kind`)."""

from __future__ import annotations

from typing import Any


def add_params_by_kind(schema: dict[str, Any]) -> None:
    """A `json_schema_extra` hook: `x-params-by-kind` maps each kind to its params' schema."""
    from seqserve.shared.tasks import JOB_KINDS  # tasks imports the jobs package: resolved late

    schema["x-params-by-kind"] = {name: kind.params.model_json_schema() for name, (_, kind) in JOB_KINDS.items()}
