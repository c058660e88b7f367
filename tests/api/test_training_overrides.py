"""POST /v1/training-runs validates overrides against the task's config at submission: a bad
one is a 422 naming `overrides.<key>`, and nothing is recorded or queued."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from seqserve.services.api.main import create_app
from seqserve.shared.db.models import TrainingRun
from seqserve.shared.db.session import session_scope
from seqserve.shared.training import TRAINING_QUEUE
from tests.conftest import REDIS_URL, create_key


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"Authorization": f"Bearer {create_key()}"}) as test_client:
        yield test_client


def _runs() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(TrainingRun)) or 0)


def _queued() -> int:
    return int(redis.Redis.from_url(REDIS_URL).llen(TRAINING_QUEUE))


@pytest.mark.parametrize(
    ("task", "overrides", "field"),
    [("classify", {"epochs": 1_000_000_000_000}, "overrides.epochs"),
     ("classify", {"__class__": 1}, "overrides.__class__"), ("classify", {"epochz": 3}, "overrides.epochz"),
     ("tag", {"epochs": "5"}, "overrides.epochs"), ("generate", {"tie_weights": 1}, "overrides.tie_weights"),
     ("tag", {"column": "pos"}, "overrides.column"), ("translate", {"ema_decay": 1.0}, "overrides.ema_decay"),
     ("generate", {"max_train_examples": 10}, "overrides.max_train_examples")],
)
def test_a_bad_override_is_refused_naming_the_key(
    client: TestClient, task: str, overrides: dict, field: str
) -> None:
    response = client.post("/v1/training-runs", json={"task": task, "overrides": overrides})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert _runs() == 0 and _queued() == 0


def test_a_bad_task_or_preset_is_named_and_the_overrides_are_not_judged(client: TestClient) -> None:
    response = client.post("/v1/training-runs", json={"task": "summarize", "overrides": {"epochs": 3}})
    assert response.status_code == 422 and response.json()["error"]["field"] == "task"
    response = client.post("/v1/training-runs", json={"task": "tag", "preset": "huge", "overrides": {"x": 1}})
    assert response.status_code == 422 and response.json()["error"]["field"] == "preset"


def test_valid_overrides_are_queued_as_given(client: TestClient) -> None:
    overrides = {"epochs": 1, "lr": 1, "max_train_examples": 400, "cell": "gru"}
    response = client.post("/v1/training-runs", json={"task": "classify", "preset": "full", "overrides": overrides})
    assert response.status_code == 202, response.text
    assert response.json()["config"] == {"overrides": overrides}
    assert _runs() == 1 and _queued() == 1
