"""`/docs` and `/redoc` in a real headless Chromium against a real api process: each page
renders the routes, and the browser asks nothing of any host but the api (no CDN)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import processes
from tests.e2e.test_console_browser import CHROMIUM, DevTools, headless_chromium

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(CHROMIUM is None, reason="needs a chromium binary")]


@pytest.fixture()
def api(db: str, stack_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = processes.free_port()
    proc = processes.start(["api", "--port", str(port)], stack_env, tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(f"{base}/healthz", proc, tmp_path / "api.log")
        yield base
    finally:
        processes.stop(proc)


def _sent_urls(devtools: DevTools) -> list[str]:
    """URLs the browser asked for, less those its CSP stopped before they left."""
    blocked = {event["params"]["requestId"] for event in devtools.events
               if event.get("method") == "Network.loadingFailed" and event["params"].get("blockedReason") == "csp"}
    return [event["params"]["request"]["url"] for event in devtools.events
            if event.get("method") == "Network.requestWillBeSent" and event["params"]["requestId"] not in blocked]


@pytest.mark.parametrize(("page", "rendered"), [
    ("/docs", "document.querySelector('.opblock-summary-path[data-path=\"/v1/jobs\"]') !== null"),
    ("/redoc", "document.querySelector('.redoc-wrap') !== null && document.body.innerText.includes('/v1/jobs')"),
])
def test_docs_page_renders_the_routes_offline(api: str, page: str, rendered: str, tmp_path: Path) -> None:
    with headless_chromium(tmp_path / "profile", tmp_path / "chromium.log") as devtools:
        for domain in ("Runtime", "Log", "Page", "Network"):
            devtools.call(f"{domain}.enable")
        devtools.call("Page.navigate", url=f"{api}{page}")
        devtools.wait_until(rendered, timeout=30)
        assert "/v1/models/{name}" in devtools.evaluate("document.body.innerText")
        devtools.pump(0.5)
        urls = _sent_urls(devtools)

    assert any(url.endswith(".js") for url in urls), urls  # the page's assets were fetched ...
    elsewhere = [url for url in urls if not url.startswith((f"{api}/", "data:", "blob:"))]
    assert elsewhere == []  # ... and only from the api itself
