"""The audit trail: alias moves (who, from, to, why; the gate's too), key changes and
training runs started are rows, read by admins newest first with filters and a cursor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from seqserve.services.api.main import create_app
from tests.conftest import create_key


@pytest.fixture()
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_changes_are_audited_and_read_newest_first(client: TestClient, registered_model: str, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import register_tiny

    admin = _bearer(create_key(name="root"))
    register_tiny()  # v2: the gate keeps or moves production; either way v1's promotion is a row
    before = client.get(f"/v1/models/{registered_model}", headers=admin).json()["aliases"]["production"]
    after = 3 - before  # the other of v1 and v2
    moved = client.put(f"/v1/models/{registered_model}/aliases/production", headers=admin,
                       json={"version": after, "reason": "wins the A/B"})
    assert moved.status_code == 200
    client.post("/v1/keys", headers=admin, json={"name": "ci", "team": "red", "scopes": ["jobs:read"]})
    client.post("/v1/keys/ci/revoke", headers=admin)
    run = client.post("/v1/training-runs", headers=admin, json={"task": "classify", "preset": "quick"})
    assert run.status_code == 202, run.text
    events = client.get("/v1/audit", headers=admin).json()["items"]
    by_action = [(e["action"], e["actor"], e["target"]) for e in events]
    assert by_action[:4] == [("training.started", "root", run.json()["id"]), ("key.revoked", "root", "ci"),
                             ("key.created", "root", "ci"), ("alias.moved", "root", f"{registered_model}@production")]
    assert events[3]["detail"] == {"from": before, "to": after, "reason": "wins the A/B"}
    assert ("alias.moved", "gate", f"{registered_model}@production") in by_action  # v1's first promotion
    moves = client.get("/v1/audit", headers=admin, params={"action": "alias.moved", "limit": 1}).json()
    assert len(moves["items"]) == 1 and moves["items"][0]["actor"] == "root" and moves["next_cursor"]
    older = client.get("/v1/audit", headers=admin, params={"action": "alias.moved", "cursor": moves["next_cursor"]})
    assert [e["actor"] for e in older.json()["items"]][-1] == "gate"
    assert client.get("/v1/audit", headers=_bearer(create_key("red", ("jobs:read",)))).status_code == 403
