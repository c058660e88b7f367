"""Prometheus for prefork Celery processes: children write to PROMETHEUS_MULTIPROC_DIR (set by
the `seqserve` command before prometheus_client is imported), the parent serves them all."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery.signals import worker_init, worker_process_shutdown

log = logging.getLogger(__name__)


Probe = Callable[[], tuple[bool, dict[str, Any]]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_: Any) -> None:  # probes every few seconds: no access log
        pass


def _wsgi_app(registry: Any, livez: Probe | None) -> Callable[..., Iterable[bytes]]:
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if livez is None or environ.get("PATH_INFO") != "/livez":
            return metrics(environ, start_response)
        live, detail = livez()
        start_response("200 OK" if live else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [json.dumps(detail).encode()]

    return route


def serve_from_parent(port_of: Callable[[], int], role: str, livez: Probe | None = None) -> None:
    """Connect the signals: the parent serves /metrics (and `livez` as /livez) on `port_of()`,
    dead children are marked so their live gauges drop out."""

    @worker_init.connect(weak=False)
    def _serve(**_: object) -> None:
        port = port_of()
        if not port or "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        try:
            server = make_server("", port, _wsgi_app(registry, livez), _Server, handler_class=_QuietHandler)
        except OSError as exc:  # another process on this host has the port: serve jobs anyway
            log.error("%s metrics port %d unavailable (%s); metrics not served", role, port, exc)
            return
        threading.Thread(target=server.serve_forever, name=f"{role}-metrics", daemon=True).start()
        log.info("%s metrics on :%d/metrics%s", role, port, " and /livez" if livez else "")

    @worker_process_shutdown.connect(weak=False)
    def _child_exit(pid: int | None = None, **_: object) -> None:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid or os.getpid())
