"""API key schemas: what the admin endpoints and the CLI read and write."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from seqserve.shared.auth.scopes import Scope

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique name of the key.")
    team: str = Field(pattern=NAME_PATTERN, description="The team whose jobs the key submits and sees.")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_days: int | None = Field(None, ge=1, le=3650, description="Days until the key expires; none: never.")


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


class ApiKeyCreated(ApiKeyRead):
    secret: str = Field(description="Shown once: only its sha256 is stored.")
