"""The error text a job's or a training run's owner reads over HTTP: the exception's type and
message, with the server's directories taken out of any absolute path in it (the service's log
keeps the whole message)."""

from __future__ import annotations

import re

# A directory part of an absolute path: /srv/seqserve/artifacts/m/1/model.pt -> model.pt. Not
# inside a URL (http://host/a/b) or a relative path (a/b/c).
_SERVER_DIRS = re.compile(r"(?<![\w.~/:])/(?:[\w.+-]+/)+(?=[\w.+-])")


def public_error_text(exc: BaseException) -> str:
    return _SERVER_DIRS.sub("", f"{type(exc).__name__}: {exc}")
