"""Create, verify and revoke API keys. Only a secret's sha256 is stored: the secrets are 256
random bits, so a fast hash is as safe as a slow one (no dictionary to try) and costs
microseconds on every cache miss instead of the ~100 ms a password hash would."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from seqserve.shared.audit import repository as audit
from seqserve.shared.auth import repository as keys_repo
from seqserve.shared.auth.limits import LIMIT_FIELDS, NO_LIMITS, KeyLimits
from seqserve.shared.auth.scopes import Scope, grants
from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import ApiKey

SECRET_PREFIX = "sk_"
PREFIX_CHARS = len(SECRET_PREFIX) + 8  # stored in clear to find the row and to name the key in lists
# last_used_at is written at most this often per key (it is not a write per request).
TOUCH_EVERY = timedelta(seconds=60)


class ApiKeyError(Exception):
    """A key that can not be created or revoked (name taken, unknown)."""


class KeyRevokedError(ApiKeyError):
    """The key exists but is revoked."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: what a verified key grants."""

    key_name: str
    team: str
    scopes: frozenset[str]
    expires_at: datetime | None
    limits: KeyLimits = NO_LIMITS

    def allows(self, scope: Scope) -> bool:
        return grants(self.scopes, scope)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, name: str, team: str, scopes: list[str], expires_days: int | None = None,
           actor: str = "cli", limits: KeyLimits = NO_LIMITS) -> tuple[ApiKey, str]:
    """A new key and its secret (returned once, never stored), audited."""
    if keys_repo.by_name(session, name) is not None:
        raise ApiKeyError(f"a key named '{name}' exists")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    key = ApiKey(name=name, team=team, scopes=sorted(set(scopes)), prefix=secret[:PREFIX_CHARS],
                 secret_sha256=digest(secret), expires_at=expires_at, rate_limit=limits.rate_limit,
                 inputs_per_minute=limits.inputs_per_minute, max_priority=limits.max_priority)
    keys_repo.add(session, key)
    audit.record(session, actor, audit.Action.key_created, name,
                 {"team": team, "scopes": key.scopes, "expires_at": expires_at.isoformat() if expires_at else None,
                  "rate_limit": limits.rate_limit, "inputs_per_minute": limits.inputs_per_minute,
                  "max_priority": limits.max_priority})
    return key, secret


def revoke(session: Session, name: str, actor: str = "cli") -> ApiKey:
    key = keys_repo.by_name(session, name)
    if key is None:
        raise ApiKeyError(f"no key named '{name}'")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
        audit.record(session, actor, audit.Action.key_revoked, name, {"team": key.team})
    return key


def update_limits(session: Session, name: str, changes: dict[str, Any], actor: str = "cli") -> ApiKey:
    """Set a key's own limits (None: the settings' default), audited with the old values.
    Callers validate the values (ApiKeyLimitsUpdate); a revoked key cannot change."""
    key = keys_repo.by_name(session, name)
    if key is None:
        raise ApiKeyError(f"no key named '{name}'")
    if key.revoked_at is not None:
        raise KeyRevokedError(f"key '{name}' is revoked; create a new key instead")
    unknown = set(changes) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"not a key limit: {', '.join(sorted(unknown))}")
    before = {field: getattr(key, field) for field in changes}
    for field, value in changes.items():
        setattr(key, field, value)
    session.flush()
    audit.record(session, actor, audit.Action.key_limits, name, {"team": key.team, "before": before, "after": changes})
    return key


def verify(session: Session, secret: str) -> Principal | None:
    """The live key this secret belongs to (not revoked; expiry is the caller's to check
    at each use), touching its last use when that is older than TOUCH_EVERY."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    wanted = digest(secret)
    for key in keys_repo.by_prefix(session, secret[:PREFIX_CHARS]):
        if hmac.compare_digest(key.secret_sha256, wanted) and key.revoked_at is None:
            now = utcnow()
            if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
                keys_repo.touch(session, key.id, now)
            limits = KeyLimits(key.rate_limit, key.inputs_per_minute, key.max_priority)
            return Principal(key.name, key.team, frozenset(key.scopes), key.expires_at, limits)
    return None
