"""What a key may submit: job submissions per window, inputs per minute and a max priority.

A key's own value wins; a key without one (NULL) takes the SEQSERVE_RATE_LIMIT_* default.
`0` means unlimited, in a key and in the defaults. The API enforces them
(services/api/limits.py); the CLI, the key schemas and the settings parse them here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import get_args

from seqserve.shared.jobs.schemas import Priority

# "N/s" or "N/min"; "0" alone is unlimited. The pattern is the API schema's too.
RATE_PATTERN = r"^(0|[1-9][0-9]{0,8}/(s|min))$"
WINDOW_SECONDS = {"s": 1, "min": 60}
INPUTS_WINDOW_SECONDS = 60
MAX_INPUTS_PER_MINUTE = 1_000_000_000
# A key's own limits, as the key table, the keys API and the CLI name them.
LIMIT_FIELDS = ("rate_limit", "inputs_per_minute", "max_priority")
# Lowest first: a key may submit at its max priority and below.
PRIORITIES: tuple[str, ...] = tuple(reversed(get_args(Priority)))


@dataclass(frozen=True)
class Rate:
    """`quota` submissions per `window` seconds."""

    quota: int
    window: int

    def __str__(self) -> str:
        return f"{self.quota}/{'s' if self.window == 1 else 'min'}"


def parse_rate(text: str) -> Rate | None:
    """'10/s' -> Rate(10, 1), '600/min' -> Rate(600, 60), '0' -> None (unlimited); ValueError otherwise."""
    text = text.strip()
    if not re.fullmatch(RATE_PATTERN, text):
        raise ValueError(f"rate limit '{text}' is not N/s or N/min (N from 1 to 999999999), or 0 for unlimited")
    if text == "0":
        return None
    quota, unit = text.split("/")
    return Rate(int(quota), WINDOW_SECONDS[unit])


def parse_priority(text: str) -> str:
    if text not in PRIORITIES:
        raise ValueError(f"max priority '{text}' is not one of {', '.join(PRIORITIES)}")
    return text


def priority_allowed(priority: str, max_priority: str) -> bool:
    return PRIORITIES.index(priority) <= PRIORITIES.index(max_priority)


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits as stored (None: the settings' default applies)."""

    rate_limit: str | None = None
    inputs_per_minute: int | None = None
    max_priority: str | None = None


NO_LIMITS = KeyLimits()  # no limits of its own: the defaults apply


@dataclass(frozen=True)
class EffectiveLimits:
    """What is enforced for one key: its own limits over the defaults (None: unlimited)."""

    submissions: Rate | None
    inputs_per_minute: int | None
    max_priority: str


def effective(own: KeyLimits, default_rate: str, default_inputs: int, default_priority: str) -> EffectiveLimits:
    rate = parse_rate(own.rate_limit if own.rate_limit is not None else default_rate or "0")
    inputs = own.inputs_per_minute if own.inputs_per_minute is not None else default_inputs
    return EffectiveLimits(rate, inputs or None, own.max_priority or default_priority)
