"""Job kinds, the model task that serves each, and the params each accepts.

The API validates params here before anything is stored; the worker receives them with
defaults filled in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    # Unknown keys are refused, not ignored: a typo must not silently change nothing.
    model_config = ConfigDict(extra="forbid")


class ClassifyParams(_Params):
    pass


class TagParams(_Params):
    pass


class ScoreParams(_Params):
    pass


class GenerateParams(_Params):
    max_tokens: int = Field(30, ge=1, le=200, description="Words to generate after the prompt.")
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="0 means greedy decoding.")
    top_k: int = Field(0, ge=0, le=1000, description="Sample from the k likeliest words; 0 = off.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass; 1 = off.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Makes sampling repeatable.")
    next_word_top_k: int = Field(0, ge=0, le=100, description="Also return the k likeliest next words.")


class TranslateParams(_Params):
    beam_size: int = Field(4, ge=1, le=16, description="1 means greedy decoding.")
    max_tokens: int = Field(80, ge=1, le=256, description="Longest output, in tokens.")
    length_penalty: float = Field(1.0, ge=0.0, le=2.0, description="Beam scores divide by length**alpha.")


# kind -> (model task that serves it, params schema)
JOB_KINDS: dict[str, tuple[str, type[_Params]]] = {
    "classify": ("classify", ClassifyParams),
    "tag": ("tag", TagParams),
    "generate": ("generate", GenerateParams),
    "score": ("generate", ScoreParams),
    "translate": ("translate", TranslateParams),
}


def kinds_for_task(task: str) -> list[str]:
    return sorted(kind for kind, (served_by, _) in JOB_KINDS.items() if served_by == task)


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params with defaults filled in; raises pydantic.ValidationError on a bad one."""
    _, schema = JOB_KINDS[kind]
    return schema.model_validate(params).model_dump()


def batch_key(kind: str, params: dict[str, Any]) -> str:
    """Jobs of one model version with equal batch keys (same kind, same validated params)
    can share a forward pass."""
    canonical = json.dumps([kind, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
