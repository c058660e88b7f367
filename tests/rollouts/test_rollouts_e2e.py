"""Shadow, canary, promotion on evidence, warm-up and rollback on a real stack: uvicorn api,
a Celery worker, Postgres, Redis; two classifier versions trained differently."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from seqserve.services.worker.handlers import build_handler
from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.db.models import Job
from seqserve.shared.db.session import session_scope
from seqserve.shared.rollouts.routing import canary_arm, shadow_sampled
from seqserve.shared.rollouts.tables import SHADOW_TEAM, ShadowRun
from tests import processes
from tests.conftest import DATA_DIR, REDIS_URL, register_outcome

pytestmark = pytest.mark.e2e

MODEL = "tiny-sst2"
TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is dull and the acting is worse .", "ok",
         "an utterly charming and hilarious film", "a mess from start to finish", "not bad at all",
         "i was bored", "moving and beautifully acted", "it never finds its footing", "pure joy"]


@pytest.fixture(scope="module")
def other_classifier(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A second tiny classifier trained differently (other seed, far less data): it
    disagrees with the first on some inputs."""
    from seqserve.services.trainer.classify import train_classifier

    return train_classifier(
        data_dir=DATA_DIR, out_path=tmp_path_factory.mktemp("other") / "model.pt", preset="quick",
        overrides={"max_train_examples": 120, "epochs": 1, "embedding_dim": 16, "hidden_size": 16, "seed": 7},
        progress=False,
    )


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """api + worker; yields (API base URL, worker metrics URL)."""
    port = processes.free_port()
    env = stack_env | {"SEQSERVE_WORKER_METRICS_PORT": str(port), "SEQSERVE_ROLLOUT_WARMUP_POLL_SECONDS": "0.2",
                       "SEQSERVE_ROLLOUT_WARMUP_TIMEOUT_SECONDS": "30", "SEQSERVE_CONSUMER_WINDOW_SECONDS": "10"}
    with processes.running(env, tmp_path_factory.mktemp("logs"), ["worker", "--concurrency", "1"]) as base:
        metrics = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60  # the worker's metrics server comes up after the api answers
        while True:
            try:
                processes.scrape(metrics)
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base, metrics


@pytest.fixture()
def versions(db: str, tiny_classifier, other_classifier) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    """tiny-sst2 v1 (production) and v2 (the other classifier, not promoted)."""
    register_outcome(MODEL, "classify", tiny_classifier)
    with session_scope() as session:
        from seqserve.shared.registry.service import NewVersion, register_version

        o = other_classifier
        register_version(session, NewVersion(
            model_name=MODEL, task="classify", checkpoint_uri=str(o.checkpoint_path), sha256=o.sha256,
            size_bytes=o.size_bytes, metrics=o.metrics, primary_metric=o.primary_metric,
            dataset_fingerprint=o.data_fingerprint))
    return tiny_classifier, other_classifier


def _labels(outcome: Any, texts: list[str]) -> list[str]:
    handler = build_handler(load_checkpoint(outcome.checkpoint_path, outcome.sha256), "cpu")
    return [row["label"] for row in handler.run(texts, {})]


def _alias(base: str) -> dict[str, Any]:
    response = processes.get(f"{base}/v1/models/{MODEL}/aliases/production")
    assert response.status_code == 200, response.text
    return response.json()


def _put_rollout(base: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx_put(f"{base}/v1/models/{MODEL}/aliases/production/rollout", body)
    assert response.status_code == 200, response.text
    return response.json()


def httpx_put(url: str, body: dict[str, Any]) -> Any:
    import httpx

    return httpx.put(url, json=body, headers=processes.STACK_AUTH, timeout=30)


def _submit(base: str, inputs: list[str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = processes.post(f"{base}/v1/jobs", json={"kind": "classify", "model": MODEL, "inputs": inputs},
                              headers=headers or {})
    assert response.status_code == 202, response.text
    return response.json()


def _wait_compared(base: str, jobs: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shadow = _alias(base)["shadow"]
        if shadow["jobs"] + shadow["failed"] >= jobs:
            return shadow
        time.sleep(0.3)
    raise TimeoutError(f"shadow compared {shadow} of {jobs} jobs")


def test_shadow_samples_by_job_id_counts_agreement_and_leaves_the_real_answer_alone(  # type: ignore[no-untyped-def]
        stack, versions) -> None:
    base, metrics_url = stack
    v1, v2 = versions
    _put_rollout(base, {"shadow": {"version": 2, "rate": 0.5}, "reason": "try v2"})
    before = processes.scrape(metrics_url)  # the stack serves the whole module: count this test's only
    sent = {}
    for start in range(0, 10, 2):
        for _ in range(2):  # 10 jobs
            sent[_submit(base, TEXTS[start:start + 4])["id"]] = TEXTS[start:start + 4]
    finished = [processes.wait_job(base, job_id) | {"inputs": inputs} for job_id, inputs in sent.items()]
    expected_v1 = dict(zip(TEXTS, _labels(v1, TEXTS), strict=True))
    for job in finished:  # the real answer: production's version, production's labels
        assert job["status"] == "succeeded" and job["model_version"] == 1
        assert [r["label"] for r in job["result"]] == [expected_v1[t] for t in job["inputs"]]
    sampled = [job for job in finished if shadow_sampled(__import__("uuid").UUID(job["id"]), 0.5)]
    assert sampled, "10 uuid4 jobs at rate 0.5: none sampled has odds 1 in 1024"
    shadow = _wait_compared(base, len(sampled))
    v2_labels = dict(zip(TEXTS, _labels(v2, TEXTS), strict=True))
    inputs = [text for job in sampled for text in job["inputs"]]
    agreed = sum(expected_v1[text] == v2_labels[text] for text in inputs)
    assert 0 < agreed < len(inputs), "the two versions must disagree somewhere for this test to mean anything"
    assert (shadow["jobs"], shadow["inputs"], shadow["agreed"]) == (len(sampled), len(inputs), agreed)
    assert shadow["agreement"] == pytest.approx(agreed / len(inputs))
    with session_scope() as session:
        runs = {run.job_id: run for run in session.scalars(select(ShadowRun))}
        assert {str(job_id) for job_id in runs} == {job["id"] for job in sampled}
        for run in runs.values():  # each shadow job was created after its real job had finished
            real, twin = session.get(Job, run.job_id), session.get(Job, run.shadow_job_id)
            assert twin is not None and real is not None and real.finished_at is not None
            assert twin.created_at >= real.finished_at
            assert (twin.team, twin.priority, twin.version_number) == (SHADOW_TEAM, "low", 2)
    listed = processes.get(f"{base}/v1/jobs", params={"limit": 100}).json()["items"]
    assert {job["id"] for job in listed} == {job["id"] for job in finished}  # shadow jobs never listed
    after = processes.scrape(metrics_url)

    def counted(agree: str) -> float:
        return sum(processes.metric_total(samples, "seqserve_shadow_inputs_total", model=MODEL, agree=agree) * sign
                   for samples, sign in ((after, 1), (before, -1)))

    assert (counted("true"), counted("false")) == (agreed, len(inputs) - agreed)


def test_canary_splits_by_weight_and_sticks_to_the_routing_key(stack, versions) -> None:  # type: ignore[no-untyped-def]
    base, _ = stack
    _put_rollout(base, {"canary": {"1": 70, "2": 30}})
    got = {}
    for number in range(120):
        key = f"user-{number}"
        job = _submit(base, ["fine"], {"Routing-Key": key})
        assert job["model_version"] == canary_arm_number(key)
        got[key] = job["model_version"]
    share = sum(v == 2 for v in got.values()) / len(got)
    assert 0.15 <= share <= 0.45  # 30% +- 4 standard deviations of 120 draws
    for key in ("user-1", "user-2", "user-3"):  # sticky: the same key, the same version
        assert {_submit(base, ["again"], {"Routing-Key": key})["model_version"] for _ in range(3)} == {got[key]}
    idem = _submit(base, ["x"], {"Idempotency-Key": "order-77"})["model_version"]
    assert idem == canary_arm_number("order-77")
    arms = {arm["version"]: arm for arm in _alias(base)["canary"]}
    assert set(arms) == {1, 2} and arms[2]["weight"] == 30


def canary_arm_number(key: str) -> int:
    from seqserve.shared.rollouts.routing import CanaryArm

    return canary_arm((CanaryArm(0, 1, 70), CanaryArm(0, 2, 30)), MODEL, "production", key).number


def _audit(base: str, action: str) -> list[dict[str, Any]]:
    return processes.get(f"{base}/v1/audit", params={"action": action}).json()["items"]


def test_policy_refuses_then_allows_promotion_and_rollback_restores_the_state(  # type: ignore[no-untyped-def]
        stack, versions) -> None:
    base, _ = stack
    url = f"{base}/v1/models/{MODEL}/aliases/production"
    _put_rollout(base, {"shadow": {"version": 2, "rate": 1.0}, "policy": {"min_shadow_inputs": 1000}})
    jobs = [_submit(base, TEXTS[:5]) for _ in range(2)]
    for job in jobs:
        processes.wait_job(base, job["id"])
    _wait_compared(base, 2)
    refused = processes.post(f"{url}/promote", json={"reason": "too early"}, timeout=60)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "promotion_refused" and "10 shadowed inputs" in refused.text
    assert _alias(base)["version"] == 1
    assert _audit(base, "alias.refused")[0]["detail"]["checks"][0]["passed"] is False
    _put_rollout(base, {"shadow": {"version": 2, "rate": 1.0}, "policy": {"min_shadow_inputs": 10}})
    allowed = processes.post(f"{url}/promote", json={"reason": "enough evidence"}, timeout=60)
    assert allowed.status_code == 200, allowed.text
    body = allowed.json()
    assert body["promoted"] and body["state"]["version"] == 2 and body["state"]["shadow"] is None
    assert body["checks"] == [{"name": "min_shadow_inputs", "passed": True, "detail": body["checks"][0]["detail"]}]
    assert _submit(base, ["after"])["model_version"] == 2
    moved = _audit(base, "alias.moved")[0]
    assert moved["detail"]["to"] == 2 and moved["detail"]["checks"][0]["passed"]
    back = processes.post(f"{url}/rollback", json={"reason": "undo"})
    assert back.status_code == 200, back.text
    state = back.json()
    assert state["version"] == 1 and state["shadow"]["version"] == 2 and state["shadow"]["rate"] == 1.0
    assert state["policy"]["min_shadow_inputs"] == 10
    assert _submit(base, ["back"])["model_version"] == 1
    assert _audit(base, "alias.rolled_back")[0]["detail"]["to"]["version"] == 1


def _copy_as_new_version(outcome: Any, tmp_path: Path) -> None:
    """The same weights under a new version (another file): no process has it loaded."""
    from seqserve.shared.registry.service import NewVersion, register_version

    path = tmp_path / "copy.pt"
    shutil.copy(outcome.checkpoint_path, path)
    with session_scope() as session:
        register_version(session, NewVersion(
            model_name=MODEL, task="classify", checkpoint_uri=str(path), sha256=outcome.sha256,
            size_bytes=outcome.size_bytes, metrics=outcome.metrics, primary_metric=outcome.primary_metric,
            dataset_fingerprint=outcome.data_fingerprint))


def _run_seconds(base: str, inputs: list[str]) -> float:
    job = processes.wait_job(base, _submit(base, inputs)["id"])
    assert job["status"] == "succeeded"
    return float(job["timings"]["run_seconds"])


def _wait_consumer(timeout: float = 30) -> None:
    from seqserve.shared import consumers
    from seqserve.shared.queueing import INFERENCE_QUEUES

    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + timeout
    while not any(consumers.live(client, INFERENCE_QUEUES, time.time(), 10).values()):
        assert time.monotonic() < deadline, "the worker never vouched for itself"
        time.sleep(0.2)


def test_promotion_warms_the_workers_before_the_alias_serves(stack, versions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, metrics_url = stack
    v1, _ = versions
    _copy_as_new_version(v1, tmp_path)  # v3
    steady = statistics.median(_run_seconds(base, TEXTS) for _ in range(5))
    _wait_consumer()  # each test empties Redis: the worker vouches for itself again within seconds
    def loads() -> float:
        return processes.metric_total(processes.scrape(metrics_url), "seqserve_model_load_seconds_count",
                                      model=MODEL, version="3")

    loaded_before = loads()
    promoted = processes.post(f"{base}/v1/models/{MODEL}/aliases/production/promote", json={"version": 3},
                              timeout=60).json()
    assert promoted["state"]["version"] == 3 and not promoted["warm_timed_out"]
    assert promoted["warm_processes"] >= promoted["expected_workers"] == 1
    assert promoted["state"]["warm"]["3"]
    samples = processes.scrape(metrics_url)
    # Loaded (once) before the alias served it: the first job pays no load.
    assert loads() == loaded_before + 1
    cold_load = processes.metric_total(samples, "seqserve_model_load_seconds_sum", model=MODEL, version="3")
    first = _run_seconds(base, TEXTS)
    assert loads() == loaded_before + 1  # the first job loaded nothing
    # The job's run time includes claim and write round trips; 2x steady plus 20 ms of
    # scheduling noise on a shared 2-core machine, and well under a cold load plus a job.
    assert first <= 2 * steady + 0.02, (first, steady, cold_load)
    assert first < cold_load + steady


def test_a_shadow_started_on_a_serving_stack_gets_its_sampled_jobs_submitted_together(  # type: ignore[no-untyped-def]
        stack, versions) -> None:
    """The worker looks for shadow work only for jobs its claim says are shadowed: jobs served
    before the rollout have none, and once it starts, every sampled job of concurrent
    submissions (group commit: sampled and plain jobs in one group) gets its comparison."""
    from concurrent.futures import ThreadPoolExecutor

    base, _ = stack
    before = [_submit(base, TEXTS[:2])["id"] for _ in range(3)]
    assert all(processes.wait_job(base, job_id)["status"] == "succeeded" for job_id in before)
    _put_rollout(base, {"shadow": {"version": 2, "rate": 0.5}, "reason": "try v2"})
    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(lambda i: _submit(base, [TEXTS[i % len(TEXTS)]])["id"], range(24)))
    assert all(processes.wait_job(base, job_id)["status"] == "succeeded" for job_id in sent)
    sampled = {job_id for job_id in sent if shadow_sampled(__import__("uuid").UUID(job_id), 0.5)}
    assert sampled and sampled != set(sent), "24 uuid4 jobs at rate 0.5: all or none sampled has odds 1 in 2**23"
    _wait_compared(base, len(sampled))
    with session_scope() as session:
        runs = {str(run.job_id): run.status for run in session.scalars(select(ShadowRun))}
    assert runs == dict.fromkeys(sampled, "compared")
