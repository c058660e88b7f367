"""The one list of scopes: the CLI, the API's policies, the schemas and the tests derive from it."""

from __future__ import annotations

import enum


class Scope(str, enum.Enum):
    jobs_read = "jobs:read"
    jobs_write = "jobs:write"
    models_read = "models:read"
    models_write = "models:write"  # moving aliases: promote, roll back
    training_write = "training:write"
    metrics_read = "metrics:read"  # Prometheus' scrape key when SEQSERVE_METRICS_AUTH=bearer
    admin = "admin"  # implies every other scope


SCOPES: tuple[str, ...] = tuple(scope.value for scope in Scope)


def grants(held: frozenset[str], needed: Scope) -> bool:
    return needed.value in held or Scope.admin.value in held


def parse_scopes(text: str) -> list[str]:
    """'jobs:read,jobs:write' -> the scopes, refusing unknown ones (ValueError)."""
    scopes = sorted({part.strip() for part in text.split(",") if part.strip()})
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown or no scopes {unknown}; known: {', '.join(SCOPES)}")
    return scopes
