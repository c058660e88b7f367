"""Job kinds, the model task that serves each, and the params each accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ClassifyParams(BaseModel):
    """Classification takes no options yet; unknown keys are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


# kind -> (model task that serves it, params schema)
JOB_KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "classify": ("classify", ClassifyParams),
}


def kinds_for_task(task: str) -> list[str]:
    return sorted(kind for kind, (served_by, _) in JOB_KINDS.items() if served_by == task)


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params with defaults filled in; raises pydantic.ValidationError on a bad one."""
    _, schema = JOB_KINDS[kind]
    return schema.model_validate(params).model_dump()
