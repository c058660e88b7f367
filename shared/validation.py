"""Input types every boundary shares: text that Postgres and UTF-8 can hold, and datetimes
written one way (ISO 8601 with a timezone), so a bad value is a 422 naming its field."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StrictStr

# NUL: Postgres text can not hold it. Lone surrogates (U+D800-U+DFFF): JSON "\ud800" decodes
# to one, and nothing downstream can encode it as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` unchanged, or ValueError when it holds NUL or a lone surrogate."""
    found = _UNSTORABLE.search(text)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "a lone surrogate"
        raise ValueError(f"text must not contain {what} (at position {found.start()})")
    return text


def printable_text(text: str) -> str:
    """`text` with anything UTF-8 can not encode written as an escape (for error messages that
    echo input back)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _iso_datetime(value: Any) -> Any:
    # Without this a number (or "0.5") is read as a Unix timestamp: refuse anything but text
    # that `datetime.fromisoformat` reads; the AwareDatetime type then demands a timezone.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 datetime with a timezone, e.g. 2026-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{printable_text(value)}' is not an ISO 8601 datetime, e.g. 2026-01-31T12:00:00Z") from None


Text = Annotated[str, AfterValidator(storable)]
StrictText = Annotated[StrictStr, AfterValidator(storable)]
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]
