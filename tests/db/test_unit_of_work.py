"""The unit of work on the real Postgres: what it queues with `after_commit` is sent only once
its rows are committed (and visible to others), never after a rollback; a send that fails
runs its undo in a transaction of its own."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from seqserve.shared.db.models import QueueHeartbeat
from seqserve.shared.db.session import after_commit, session_scope


def _heartbeats() -> int:
    with session_scope() as session:  # another session: sees committed rows only
        return int(session.scalar(select(func.count()).select_from(QueueHeartbeat)) or 0)


def test_messages_go_out_after_the_commit_and_never_after_a_rollback(db: str) -> None:
    seen: list[int] = []
    with session_scope() as session:
        session.add(QueueHeartbeat(queue="q1"))
        session.flush()
        after_commit(session).add(lambda: seen.append(_heartbeats()))
        assert seen == []
    assert seen == [1]  # sent once the row was visible to everyone
    with pytest.raises(RuntimeError), session_scope() as session:
        session.add(QueueHeartbeat(queue="q2"))
        after_commit(session).add(lambda: seen.append(-1))
        raise RuntimeError("the work failed")
    assert seen == [1] and _heartbeats() == 1


def test_a_failed_send_runs_its_undo_and_propagates(db: str) -> None:
    def refuse() -> None:
        raise ConnectionError("the broker is down")

    def withdraw(session) -> None:  # type: ignore[no-untyped-def]
        session.delete(session.get(QueueHeartbeat, "q1"))

    with pytest.raises(ConnectionError), session_scope() as session:
        session.add(QueueHeartbeat(queue="q1"))
        after_commit(session).add(refuse, undo=withdraw)
    assert _heartbeats() == 0
