"""The `/docs` and `/redoc` pages: fastapi-offline serves Swagger UI's and ReDoc's files from
its package, and this header keeps the pages from reaching any other host (ReDoc's bundle
would load its logo from a CDN)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Both pages start themselves with an inline script and style their widgets inline; ReDoc
# renders in a blob: worker and draws icons as data: images.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'")


class DocsPagesPolicy:
    """Adds `DOCS_CSP` to the answers of the docs pages (plain ASGI, like `RequestTimer`)."""

    def __init__(self, app: ASGIApp, pages: tuple[str, ...] = ("/docs", "/redoc")) -> None:
        self.app = app
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.pages:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"content-security-policy", DOCS_CSP.encode())]
            await send(message)

        await self.app(scope, receive, send_with_policy)
