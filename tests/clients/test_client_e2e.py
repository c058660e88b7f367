"""seqserve_client against a real stack (api + worker, Postgres, Redis), sync and async:
typed results, typed errors, the registry and training routes, and retries on 429/503
that never make a second job."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from seqserve_client import (
    AsyncClient,
    BadRequest,
    ClassifyResult,
    Client,
    Conflict,
    GenerateResult,
    JobFailed,
    NotFound,
    RateLimited,
    Unauthorized,
)
from seqserve_client._waiting import finished

from tests import processes
from tests.clients.proxy import misbehaving
from tests.conftest import create_key, register_outcome

pytestmark = pytest.mark.e2e


def _client(base: str, **kwargs: object) -> Client:
    return Client(base, api_key=processes.STACK_KEY, **kwargs)  # type: ignore[arg-type]


def test_run_returns_typed_results(served: str) -> None:
    with _client(served) as client:
        job = client.run("classify", "tiny-sst2", ["a gorgeous, witty film", "dull and lifeless"])
        assert job.status == "succeeded" and job.num_inputs == 2 and job.finished_at is not None
        assert all(isinstance(r, ClassifyResult) and r.label in r.probabilities for r in job.result or [])
        generated = client.run("generate", "tiny-lm", "the market", {"max_tokens": 5, "seed": 1})
        first = (generated.result or [])[0]
        assert isinstance(first, GenerateResult) and len(first.tokens) == 5


def test_jobs_create_get_list_wait_cancel(served: str) -> None:
    with _client(served) as client:
        job = client.jobs.create("classify", "tiny-sst2", ["fine"])
        assert job.status == "queued"
        assert client.jobs.wait(job.id, timeout=60).status == "succeeded"
        assert client.jobs.get(job.id).result is not None
        page = client.jobs.list(kind="classify", limit=1)
        assert [j.id for j in page.items] == [job.id] and page.next_cursor is None
        with pytest.raises(Conflict) as ended:
            client.jobs.cancel(job.id)
        assert ended.value.code == "job_finished" and ended.value.status == 409


def test_errors_carry_the_server_code_field_and_status(served: str) -> None:
    with _client(served) as client:
        with pytest.raises(BadRequest) as bad:
            client.jobs.create("classify", "tiny-sst2", ["ok", " "])
        assert (bad.value.status, bad.value.field) == (422, "inputs[1]") and bad.value.code == "invalid_request"
        with pytest.raises(NotFound) as missing:
            client.jobs.get("00000000-0000-0000-0000-000000000000")
        assert missing.value.code == "job_not_found" and missing.value.field == "id"
        with pytest.raises(NotFound) as no_model:
            client.run("classify", "no-such-model", ["x"])
        assert no_model.value.code == "model_not_found"
    with Client(served, api_key="sk_wrong") as anonymous, pytest.raises(Unauthorized):
        anonymous.models.list()


def test_another_teams_job_is_not_found(served: str) -> None:
    with _client(served) as client:
        job = client.run("classify", "tiny-sst2", ["mine"])
    with Client(served, api_key=create_key(team="other", scopes=("jobs:read", "jobs:write"))) as other:
        with pytest.raises(NotFound):
            other.jobs.get(job.id)
        assert other.jobs.list().items == []


def test_models_list_get_promote_rollback(served: str) -> None:
    with _client(served) as client:
        names = {m.name: m for m in client.models.list()}
        assert names["tiny-sst2"].kinds[0] == "classify" and names["tiny-sst2"].aliases == {"production": 1}
        model = client.models.get("tiny-lm")
        assert model.task == "generate" and model.versions[0].sha256
        alias = client.models.promote("tiny-lm", 1, alias="staging", reason="try it")
        assert (alias.model, alias.alias, alias.version) == ("tiny-lm", "staging", 1)
        assert client.models.rollback("tiny-lm", 1).alias == "production"
        assert client.models.get("tiny-lm").aliases == {"production": 1, "staging": 1}
        with pytest.raises(NotFound) as missing:
            client.models.promote("tiny-lm", 7)
        assert missing.value.field == "version"


def test_rollouts_shadow_promote_on_evidence_and_one_call_rollback(served: str, tiny_classifier: Any) -> None:
    register_outcome("tiny-sst2", "classify", tiny_classifier, gate=False)  # v2, the same weights: it agrees on every input
    with _client(served) as client:
        assert client.models.rollout("tiny-sst2").version == 1
        state = client.models.set_rollout("tiny-sst2", shadow_version=2, policy={"min_shadow_inputs": 1000},
                                          reason="try v2")
        assert state.shadow is not None and (state.shadow["version"], state.shadow["rate"]) == (2, 1.0)
        assert state.policy["min_shadow_inputs"] == 1000 and state.previous is not None
        client.run("classify", "tiny-sst2", ["a gorgeous, witty film", "dull and lifeless"])
        deadline = time.monotonic() + 90
        while (shadow := client.models.rollout("tiny-sst2").shadow or {})["jobs"] < 1:
            assert time.monotonic() < deadline, shadow
            time.sleep(0.3)
        assert shadow["inputs"] == 2 and shadow["agreement"] == 1.0
        with pytest.raises(Conflict) as refused:
            client.models.promote_on_evidence("tiny-sst2", reason="too early")
        assert refused.value.code == "promotion_refused" and "2 shadowed inputs" in refused.value.message
        forced = client.models.promote_on_evidence("tiny-sst2", force=True, reason="forced")
        assert forced.promoted and forced.state.version == 2 and forced.state.shadow is None
        assert [check["passed"] for check in forced.checks] == [False] and not forced.warm_timed_out
        assert client.run("classify", "tiny-sst2", ["after"]).model_version == 2
        back = client.models.rollback("tiny-sst2", reason="undo")
        assert (back.model, back.alias, back.version) == ("tiny-sst2", "production", 1)
        restored = client.models.rollout("tiny-sst2")
        assert restored.shadow is not None and restored.shadow["version"] == 2
        assert restored.policy["min_shadow_inputs"] == 1000
        cleared = client.models.set_rollout("tiny-sst2", reason="done")
        assert cleared.shadow is None and cleared.canary == [] and cleared.policy["min_shadow_inputs"] == 0
        with pytest.raises(BadRequest) as bad:
            client.models.set_rollout("tiny-sst2", shadow_version=2, shadow_rate=0.0)
        assert bad.value.field is not None and "rate" in bad.value.field


def test_training_start_get_list(served: str) -> None:
    with _client(served) as client:
        run = client.training.start("classify", "quick", "client-run", {"epochs": 1})
        assert run.status == "queued" and (run.task, run.preset) == ("classify", "quick")
        assert client.training.get(run.id).model_name == "client-run"
        assert [r.id for r in client.training.list(limit=5)] == [run.id]
        with pytest.raises(BadRequest) as bad:
            client.training.start("classify", overrides={"epochs": "five"})
        assert bad.value.field == "overrides.epochs"
        cancelled = client.training.cancel(run.id)  # queued: it never starts
        assert cancelled.status == "cancelled" and cancelled.finished_at is not None


def test_a_cancelled_job_ends_the_wait_and_fails_run(served: str) -> None:
    with _client(served) as client:
        # Long enough (200 prompts x 200 words) that the cancel lands while it is queued or running.
        job = client.jobs.create("generate", "tiny-lm", ["the"] * 200, {"max_tokens": 200})
        assert client.jobs.cancel(job.id).status == "cancelled"
        ended = client.jobs.wait(job.id, timeout=30)
        assert ended.status == "cancelled" and ended.done
        with pytest.raises(JobFailed) as failed:
            finished(ended, raise_on_failure=True)
        assert failed.value.job.id == job.id


@pytest.mark.parametrize("steps", [["429", "503"], ["lost"]])
def test_retries_honour_retry_after_and_never_duplicate(served: str, steps: list[str]) -> None:
    with misbehaving(served, steps) as (url, script), _client(url, retries=3) as client:
        job = client.run("classify", "tiny-sst2", ["retried"])
        assert job.status == "succeeded"
        keys = {seen["Idempotency-Key"] for seen in script.seen}
        assert len(script.seen) >= len(steps) + 1 and len(keys) == 1  # every attempt sent the same key
        assert [j.id for j in client.jobs.list().items] == [job.id]  # one job, though the first reply was lost


def test_retries_run_out_as_a_typed_error(served: str) -> None:
    with misbehaving(served, ["429"] * 3) as (url, _), _client(url, retries=2) as client:
        with pytest.raises(RateLimited) as limited:
            client.jobs.create("classify", "tiny-sst2", ["x"])
        assert limited.value.status == 429 and limited.value.code == "slow_down"
        assert client.jobs.list().items == []


def test_async_client(served: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(served, api_key=processes.STACK_KEY) as client:
            jobs = await asyncio.gather(*(client.run("classify", "tiny-sst2", [f"film {i}"]) for i in range(4)))
            assert {j.status for j in jobs} == {"succeeded"}
            assert len((await client.jobs.list()).items) == 4
            assert (await client.models.get("tiny-sst2")).aliases == {"production": 1}
            assert (await client.models.rollout("tiny-sst2")).shadow is None
            with pytest.raises(Conflict) as nothing_to_undo:
                await client.models.rollback("tiny-sst2")
            assert nothing_to_undo.value.status == 409
            events = [e async for e in client.stream("generate", "tiny-lm", ["the"], {"max_tokens": 3})]
            assert [e.event for e in events][-1] == "final" and sum(e.event == "token" for e in events) == 3
            with pytest.raises(BadRequest) as bad:
                await client.jobs.create("nope", "tiny-sst2", ["x"])
            assert bad.value.field == "kind"
            run = await client.training.start("classify", overrides={"epochs": 1})
            assert (await client.training.cancel(run.id)).status == "cancelled"

    asyncio.run(scenario())


def test_async_client_retries_without_a_duplicate(served: str) -> None:
    async def submit(url: str) -> str:
        async with AsyncClient(url, api_key=processes.STACK_KEY) as client:
            return (await client.run("classify", "tiny-sst2", ["async retried"])).id

    with misbehaving(served, ["lost", "429"]) as (url, script):
        job_id = asyncio.run(submit(url))
        assert len(script.seen) >= 3 and len({seen["Idempotency-Key"] for seen in script.seen}) == 1
    with _client(served) as client:
        assert [j.id for j in client.jobs.list().items] == [job_id]
