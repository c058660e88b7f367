"""The OpenAPI document tells each kind's params and their defaults (JobCreate.params is an
open object, its model depends on `kind`)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from seqserve.shared.tasks import JOB_KINDS


def test_params_by_kind_carry_defaults_and_what_they_mean(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    by_kind = document["components"]["schemas"]["JobCreate"]["properties"]["params"]["x-params-by-kind"]
    assert set(by_kind) == set(JOB_KINDS)
    generate = by_kind["generate"]
    assert generate["properties"]["temperature"]["default"] == 1.0
    assert "samples" in generate["description"] and "greedy" in generate["properties"]["temperature"]["description"]
    assert generate["properties"]["max_tokens"]["default"] == 30
    translate = by_kind["translate"]
    assert "lowercased" in translate["description"] and "MosesDetokenizer" in translate["description"]
    assert translate["properties"]["beam_size"]["default"] == 4
    assert by_kind["classify"]["additionalProperties"] is False  # unknown keys are refused
