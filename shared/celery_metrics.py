"""Prometheus for prefork Celery processes: children write to PROMETHEUS_MULTIPROC_DIR (set by
the `seqserve` command before prometheus_client is imported), the parent serves them all."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from celery.signals import worker_init, worker_process_shutdown

log = logging.getLogger(__name__)


def serve_from_parent(port_of: Callable[[], int], role: str) -> None:
    """Connect the signals: the parent serves /metrics on `port_of()`, dead children are
    marked so their live gauges drop out."""

    @worker_init.connect(weak=False)
    def _serve(**_: object) -> None:
        port = port_of()
        if not port or "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        try:
            start_http_server(port, registry=registry)
        except OSError as exc:  # another process on this host has the port: serve jobs anyway
            log.error("%s metrics port %d unavailable (%s); metrics not served", role, port, exc)
            return
        log.info("%s metrics on :%d/metrics", role, port)

    @worker_process_shutdown.connect(weak=False)
    def _child_exit(pid: int | None = None, **_: object) -> None:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid or os.getpid())
