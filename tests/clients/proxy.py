"""A tiny HTTP proxy in front of a test stack that misbehaves on cue: it answers a scripted
status to the first POSTs (before or after forwarding them), then passes everything through."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Script:
    """Per POST, in order: "429" / "503" answer that without forwarding; "lost" forwards the
    request and answers 503 instead of the server's reply (as if the reply were lost)."""

    upstream: str
    steps: list[str]
    seen: list[dict[str, str]] = field(default_factory=list)  # each POST's headers


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self, body: bytes | None) -> httpx.Response:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            return httpx.request(self.command, script.upstream + self.path, headers=headers, content=body, timeout=60)

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else None
            step = None
            if self.command == "POST":
                script.seen.append(dict(self.headers.items()))
                step = script.steps.pop(0) if script.steps else None
            if step in ("429", "503"):
                error = b'{"error": {"code": "slow_down", "message": "scripted"}}'
                self._answer(int(step), error, {"Retry-After": "0.2", "Content-Type": "application/json"})
                return
            response = self._forward(body)
            if step == "lost":
                self._answer(503, b"upstream reply lost", {"Content-Type": "text/plain"})
                return
            passed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
            self._answer(response.status_code, response.content, passed)

        do_GET = do_POST = do_PUT = _serve

    return Handler


@contextmanager
def misbehaving(upstream: str, steps: list[str]) -> Iterator[tuple[str, Script]]:
    script = Script(upstream, list(steps))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()
