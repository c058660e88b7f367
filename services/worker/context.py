"""What a worker process keeps between messages, in one object with one owner: the process.

Built on the first message after the fork (a child never shares its parent's sockets or
models); tests build their own or reset the process's one (`reset_worker_context`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from celery import Celery
from redis import Redis

from seqserve.services.worker.drift import DriftMonitor
from seqserve.services.worker.leases import LeaseKeeper
from seqserve.services.worker.model_cache import ModelCache, VersionInfo
from seqserve.shared.config import Settings, get_settings
from seqserve.shared.db.session import session_scope
from seqserve.shared.events import JobEventLog
from seqserve.shared.queueing import broker_redis
from seqserve.shared.registry import repository as registry_repo


@dataclass
class WorkerContext:
    settings: Settings
    celery: Celery
    redis: Redis | None  # the broker's Redis (None for other brokers)
    models: ModelCache = field(default_factory=ModelCache)
    # Version rows never change: one lookup per version per process.
    versions: dict[int, VersionInfo] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)
    leases: LeaseKeeper = field(default_factory=lambda: LeaseKeeper(get_settings().job_lease_seconds))
    drift: DriftMonitor = field(default_factory=DriftMonitor)  # live input/prediction statistics
    events: JobEventLog | None = None  # job event streams (None without Redis)

    @classmethod
    def build(cls, celery: Celery, settings: Settings | None = None) -> WorkerContext:
        settings = settings or get_settings()
        redis = broker_redis(settings)
        return cls(settings, celery, redis, leases=LeaseKeeper(settings.job_lease_seconds), drift=DriftMonitor(redis=redis),
                   events=JobEventLog.build(redis, settings))

    def version(self, version_id: int) -> VersionInfo:
        info = self.versions.get(version_id)
        if info is None:
            with session_scope() as session:
                row = registry_repo.get_version_by_id(session, version_id)
                if row is None:
                    raise LookupError(f"no model version {version_id}")
                info = VersionInfo(version_id, row.model.name, row.version, row.checkpoint_uri, row.sha256)
            self.versions[version_id] = info
        return info


_context: WorkerContext | None = None


def worker_context(celery: Celery) -> WorkerContext:
    """This process's context (rebuilt in a forked child)."""
    global _context
    if _context is None or _context.pid != os.getpid():
        _context = WorkerContext.build(celery)
    return _context


def reset_worker_context() -> None:
    global _context
    if _context is not None:
        _context.leases.stop()
    _context = None
