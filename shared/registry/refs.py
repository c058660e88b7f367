"""Model references as users write them: `name`, `name@alias`, `name:version`."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_ALIAS = "production"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
_REF = re.compile(rf"^(?P<name>{NAME_PATTERN})(?:@(?P<alias>{ALIAS_PATTERN})|:(?P<version>[1-9][0-9]{{0,8}}))?$")


class InvalidModelRef(ValueError):
    pass


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias or DEFAULT_ALIAS}"


def parse_model_ref(text: str) -> ModelRef:
    """Parse a reference; a bare name means its `production` alias."""
    match = _REF.match(text)
    if match is None:
        raise InvalidModelRef(
            f"'{text}' is not a model reference; use 'name', 'name@alias' or 'name:version'"
        )
    version = match.group("version")
    return ModelRef(
        name=match.group("name"),
        alias=match.group("alias") or (None if version else DEFAULT_ALIAS),
        version=int(version) if version else None,
    )


def parse_model_filter(text: str) -> ModelRef:
    """A reference as a jobs filter: like `parse_model_ref`, but a bare name keeps alias and
    version None (it matches the model's jobs on every version)."""
    ref = parse_model_ref(text)
    if "@" not in text and ":" not in text:
        return ModelRef(name=ref.name)
    return ref
