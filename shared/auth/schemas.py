"""API key schemas: what the admin endpoints and the CLI read and write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from seqserve.shared.auth.limits import MAX_INPUTS_PER_MINUTE, RATE_PATTERN, KeyLimits
from seqserve.shared.auth.scopes import Scope
from seqserve.shared.jobs.schemas import Priority

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RATE_DOC = "Job submissions per window: `N/s`, `N/min`, or `0` (unlimited); none: SEQSERVE_RATE_LIMIT_DEFAULT."
INPUTS_DOC = "Inputs (texts) per minute over all jobs; 0: unlimited; none: SEQSERVE_RATE_LIMIT_INPUTS_PER_MINUTE."
PRIORITY_DOC = "Highest priority the key may submit; none: SEQSERVE_RATE_LIMIT_MAX_PRIORITY."


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique name of the key.")
    team: str = Field(pattern=NAME_PATTERN, description="The team whose jobs the key submits and sees.")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_days: int | None = Field(None, ge=1, le=3650, description="Days until the key expires; none: never.")
    rate_limit: str | None = Field(None, pattern=RATE_PATTERN, description=RATE_DOC)
    inputs_per_minute: int | None = Field(None, ge=0, le=MAX_INPUTS_PER_MINUTE, description=INPUTS_DOC)
    max_priority: Priority | None = Field(None, description=PRIORITY_DOC)

    def limits(self) -> KeyLimits:
        return KeyLimits(self.rate_limit, self.inputs_per_minute, self.max_priority)


class ApiKeyLimitsUpdate(BaseModel):
    """New limits for an existing key: only the fields sent change; `null` returns a field to
    the settings' default."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: str | None = Field(None, pattern=RATE_PATTERN, description=RATE_DOC)
    inputs_per_minute: int | None = Field(None, ge=0, le=MAX_INPUTS_PER_MINUTE, description=INPUTS_DOC)
    max_priority: Priority | None = Field(None, description=PRIORITY_DOC)

    @model_validator(mode="after")
    def _something_changes(self) -> ApiKeyLimitsUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one of rate_limit, inputs_per_minute, max_priority")
        return self

    def changes(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in sorted(self.model_fields_set)}


class ApiKeyRead(BaseModel):
    """A key without its secret (only its non-secret prefix)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    team: str
    scopes: list[str]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit: str | None = Field(description=RATE_DOC)
    inputs_per_minute: int | None = Field(description=INPUTS_DOC)
    max_priority: str | None = Field(description=PRIORITY_DOC)


class ApiKeyCreated(ApiKeyRead):
    secret: str = Field(description="Shown once: only its sha256 is stored.")
