"""Is this worker still consuming? The answer behind the worker's `/livez` (its metrics port)
and behind its entries in the consumer registry (`seqserve.shared.consumers`).

A worker is stuck when its queues held messages all the time for `worker_liveness_seconds`
while no task started or ended in any of its processes: a hung or stopped pool child, a
consumer loop that stopped pulling. An idle worker (its queues empty) is live, however long
ago its last task; so is one that cannot see the broker (restarting it would not help; the
broker's own alerts cover that). It is live again as soon as a task starts or ends.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Any

from seqserve.shared import consumers
from seqserve.shared.config import Settings
from seqserve.shared.queueing import broker_redis, queue_depths

log = logging.getLogger(__name__)


class ProgressClock:
    """When a task last started or ended in any of this worker's processes. Shared memory
    made by the parent before the pool forks, so the children's ticks reach the parent; no
    lock, so a child killed mid-tick blocks nobody (one aligned double is written whole)."""

    def __init__(self) -> None:
        self._at = multiprocessing.RawValue("d", time.time())

    def tick(self) -> None:
        self._at.value = time.time()

    @property
    def last(self) -> float:
        return float(self._at.value)


class ConsumptionMonitor:
    """Samples the worker's queues from a thread of the parent (the process Kubernetes
    probes), keeps the verdict, and vouches for the worker in the registry while it is live."""

    def __init__(self, clock: ProgressClock, settings: Settings, worker: str, queues: list[str]) -> None:
        self.clock, self.settings, self.worker, self.queues = clock, settings, worker, queues
        self.limit = settings.worker_liveness_seconds
        self.interval = min(5.0, self.limit / 4, settings.consumer_window_seconds / 3)
        self._waiting_since: float | None = None
        self._waiting = 0
        self._broker_error: str | None = None
        self._stopped = threading.Event()

    def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        try:
            self._waiting = sum(queue_depths(self.settings, tuple(self.queues)).values())
            self._broker_error = None
        except Exception as exc:  # the broker is away: nothing to judge by
            self._waiting, self._broker_error = 0, f"{type(exc).__name__}: {exc}"
        if self._waiting == 0:
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = now

    def stuck(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self._waiting_since is None:
            return False
        return now - max(self._waiting_since, self.clock.last) > self.limit

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(live, the why) for `/livez`."""
        stuck = self.stuck()
        return not stuck, {
            "status": "stuck" if stuck else "live", "worker": self.worker, "queues": self.queues,
            "waiting": self._waiting, "waiting_since": self._waiting_since, "last_task_at": self.clock.last,
            "limit_seconds": self.limit, "broker_error": self._broker_error,
        }

    def _vouch(self) -> None:
        redis = broker_redis(self.settings)
        if redis is None:  # the filesystem broker keeps no registry
            return
        try:
            if self.stuck():
                consumers.withdraw(redis, self.worker, self.queues)
            else:
                consumers.record(redis, self.worker, self.queues, time.time(), self.settings.consumer_window_seconds)
        finally:
            redis.close()

    def run_forever(self) -> None:
        while not self._stopped.is_set():
            self.sample()
            try:
                self._vouch()
            except Exception as exc:  # the registry is best effort; /livez still answers
                log.warning("could not record %s in the consumer registry: %s", self.worker, exc)
            self._stopped.wait(self.interval)

    def start(self) -> None:
        threading.Thread(target=self.run_forever, name="consumption-monitor", daemon=True).start()

    def stop(self) -> None:
        """A warm shutdown: stop vouching and leave the registry now."""
        self._stopped.set()
        redis = broker_redis(self.settings)
        if redis is not None:
            try:
                consumers.withdraw(redis, self.worker, self.queues)
            except Exception as exc:
                log.warning("could not withdraw %s from the consumer registry: %s", self.worker, exc)
            finally:
                redis.close()


class WorkerHealth:
    """This worker's clock and monitor, one per worker (made when the app is imported, before
    the pool forks); the monitor starts once the consumer is ready and knows its queues."""

    def __init__(self) -> None:
        self.clock = ProgressClock()
        self.monitor: ConsumptionMonitor | None = None

    def start(self, settings: Settings, worker: str, queues: list[str]) -> None:
        self.monitor = ConsumptionMonitor(self.clock, settings, worker, queues)
        self.monitor.start()

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()

    def report(self) -> tuple[bool, dict[str, Any]]:
        if self.monitor is None:
            return True, {"status": "starting", "last_task_at": self.clock.last}
        return self.monitor.report()
