"""The ops console: one static page whose script polls `/v1/stats`, `/v1/models` and
`/v1/training-runs`. Nothing to build, nothing fetched from outside this server."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from seqserve.services.api.errors import ApiError

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Served by name from this fixed list only: a request can never reach another file.
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
# The page runs only its own script and style and talks only to this server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
NO_CACHE = {"Cache-Control": "no-cache"}


@router.get("")
def console_page() -> FileResponse:
    """The ops console page."""
    headers = NO_CACHE | {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    return FileResponse(STATIC_DIR / "console.html", media_type="text/html; charset=utf-8", headers=headers)


@router.get("/static/{name}")
def console_asset(name: str) -> FileResponse:
    """The console's script and stylesheet."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no console asset '{name}'", "name")
    return FileResponse(STATIC_DIR / name, media_type=f"{media_type}; charset=utf-8",
                        headers=NO_CACHE | {"X-Content-Type-Options": "nosniff"})
