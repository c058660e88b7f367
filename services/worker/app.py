"""The Celery app the worker runs: `celery -A services.worker.app worker` (or `seqserve worker`)."""

from __future__ import annotations

from celery.signals import worker_process_init

from services.worker.device import configure_torch
from shared.config import get_settings
from shared.db.session import dispose_engines
from shared.queueing import make_celery

app = make_celery()


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    # A forked child must not share the parent's database sockets. Models load lazily on the
    # first job, not here: this signal has a 4 s limit.
    dispose_engines()
    configure_torch(get_settings())


from services.worker import tasks  # noqa: E402,F401  (registers the tasks on `app`)
