"""RFC 7240 `Prefer`, read strictly: a malformed header is refused before anything is stored
(a job committed and then a 500 would make a retrying client submit it twice)."""

from __future__ import annotations

import re

from seqserve.services.api.errors import ApiError

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Plain decimal seconds only: no sign, exponent, nan or inf.
_SECONDS = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9})?$")


def _refuse(message: str) -> ApiError:
    return ApiError(422, "invalid_prefer", message, "Prefer")


def wait_seconds(prefer: str | None, max_wait: float) -> float | None:
    """The `wait=N` preference in seconds, capped at `max_wait`; None when absent or 0.
    Other well-formed preferences are ignored, as RFC 7240 asks."""
    if not prefer:
        return None
    wait: float | None = None
    for preference in prefer.split(","):
        name, has_value, value = preference.split(";", 1)[0].strip().partition("=")
        name, value = name.strip(), value.strip().strip('"')
        if not _TOKEN.match(name):
            raise _refuse("Prefer must be a list of name[=value] preferences")
        if name.lower() != "wait":
            continue
        if not has_value or not _SECONDS.match(value):
            raise _refuse(f"Prefer wait must be a plain number of seconds, e.g. wait=10; got '{value}'")
        wait = min(float(value), max_wait)
    return wait or None
