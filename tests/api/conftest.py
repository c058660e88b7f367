"""Fixtures of the in-process API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from seqserve.services.api.main import create_app
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from tests.conftest import create_key


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    """The app in-process (lifespan run), on the test database and broker, with an admin key."""
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def job_count() -> int:
    """Jobs stored, to prove a refused request stored none."""
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)
