"""Leases held by this process, renewed while it is alive.

A claim takes its jobs under a short lease (`job_lease_seconds`); a daemon thread renews
every lease this process holds a few times per lease, so a live attempt keeps its jobs
however long they compute, and a dead one (its child or its whole worker SIGKILLed) loses
them one lease later, to a redelivered or reconciled wake-up. A renewal only extends the
attempt that holds the job (fenced by attempt number, like the result write), so a renewal
that arrives late never revives a job another attempt took over.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable

from seqserve.shared.db.session import session_scope
from seqserve.shared.jobs import repository as jobs_repo
from seqserve.shared.jobs.repository import Claim

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4  # a live attempt loses its jobs only after this many missed renewals


class LeaseKeeper:
    """The claims this process holds; one per process (built after the fork with its context)."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self._claims: dict[uuid.UUID, Claim] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def hold(self, claims: Iterable[Claim]) -> None:
        with self._lock:
            self._claims.update((claim.job_id, claim) for claim in claims)
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(target=self._renew_forever, name="lease-keeper", daemon=True)
            self._thread.start()

    def release(self, job_ids: Iterable[uuid.UUID] | None = None) -> None:
        """Stop renewing these jobs (all of them when None): written, or the wake-up ended."""
        with self._lock:
            if job_ids is None:
                self._claims.clear()
            for job_id in job_ids or ():
                self._claims.pop(job_id, None)

    def held(self) -> list[Claim]:
        with self._lock:
            return list(self._claims.values())

    def renew(self) -> int:
        """Extend every held lease by a whole lease; returns the leases still held."""
        claims = self.held()
        if not claims:
            return 0
        with session_scope(autocommit=True) as session:  # each row's update stands alone
            return jobs_repo.renew_leases(session, claims, self.lease_seconds)

    def stop(self) -> None:
        """End the renewals (the process's context is being replaced)."""
        self._stopped.set()

    def _renew_forever(self) -> None:
        interval = self.lease_seconds / RENEWALS_PER_LEASE
        while not self._stopped.wait(interval):
            try:
                self.renew()
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("could not renew %d leases: %s", len(self.held()), exc)
