"""Queue wait of single jobs on an idle embedded stack (SQLite, filesystem broker): a real
`seqserve api` and `seqserve worker`, one classify job at a time, each job's
`timings.queue_seconds` (created -> started) read back from the API. Also the worker's CPU
while idle, the price of polling the broker's folder more often.

    python -m bench.embedded_queue_wait --poll 1.0 --poll 0.02 --jobs 30

Results: docs/benchmarks/embedded.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.machine import cpu_machine
from tests import processes

TINY = {"max_train_examples": 600, "epochs": 1, "embedding_dim": 32, "hidden_size": 32}


def prepare(var_dir: Path) -> tuple[dict[str, str], str]:
    """Migrate the embedded database, register a small trained classifier, create a key."""
    env = {"SEQSERVE_VAR_DIR": str(var_dir), "SEQSERVE_TORCH_THREADS": "1", "SEQSERVE_DEVICE": "cpu",
           "SEQSERVE_ARTIFACT_DIR": str(var_dir / "artifacts")}
    for key in [k for k in os.environ if k.startswith("SEQSERVE_") and k != "SEQSERVE_DATA_DIR"]:
        del os.environ[key]
    os.environ.update(env)
    from seqserve.services.trainer.classify import train_classifier
    from seqserve.shared.auth.service import create
    from seqserve.shared.config import get_settings
    from seqserve.shared.db.migrate import upgrade
    from seqserve.shared.db.session import session_scope
    from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version

    upgrade(get_settings().database_url)
    outcome = train_classifier(data_dir=get_settings().data_dir, out_path=var_dir / "artifacts" / "model.pt",
                               preset="quick", overrides=TINY, progress=False)
    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name="bench-sst2", task="classify", checkpoint_uri=str(outcome.checkpoint_path),
            sha256=outcome.sha256, size_bytes=outcome.size_bytes, metrics=outcome.metrics,
            primary_metric=outcome.primary_metric, dataset_fingerprint=outcome.data_fingerprint,
            architecture=outcome.model_config, train_config=outcome.config,
        ))
        promote_if_better(session, version, 0.0)
        _, secret = create(session, "bench", "bench", ["admin"], None)
    return env, secret


def queue_waits(base: str, auth: dict[str, str], jobs: int) -> list[float]:
    """One job at a time, after a random pause so submissions fall anywhere in a poll."""
    waits = []
    for _ in range(jobs):
        time.sleep(random.uniform(0.05, 0.3))
        response = processes.post(f"{base}/v1/jobs", headers=auth,
                                  json={"kind": "classify", "model": "bench-sst2", "inputs": ["a fine film"]})
        job = processes.wait_job(base, response.json()["id"], timeout=60, headers=auth)
        assert job["status"] == "succeeded", job
        waits.append(float(job["timings"]["queue_seconds"]))
    return waits


def run(env: dict[str, str], secret: str, poll: float, jobs: int, logs: Path) -> dict[str, float]:
    env = env | {"SEQSERVE_BROKER_POLL_SECONDS": str(poll), "SEQSERVE_WORKER_METRICS_PORT": "0"}
    port = processes.free_port()
    api = processes.start(["api", "--port", str(port)], env, logs / f"api-{poll}.log")
    worker = processes.start(["worker", "--concurrency", "1"], env, logs / f"worker-{poll}.log")
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {secret}"}
    try:
        processes.wait_http(f"{base}/healthz", api, logs / f"api-{poll}.log")
        queue_waits(base, auth, 3)  # warm: the worker loads the model
        waits = sorted(queue_waits(base, auth, jobs))
        before = processes.session_cpu_seconds(worker.pid)
        time.sleep(10)
        idle_cpu = (processes.session_cpu_seconds(worker.pid) - before) / 10
    finally:
        processes.stop(worker)
        processes.stop(api)
    return {"poll": poll, "p50": statistics.median(waits), "p90": waits[int(0.9 * (len(waits) - 1))],
            "max": waits[-1], "idle_cpu": idle_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", type=float, action="append", help="SEQSERVE_BROKER_POLL_SECONDS values to compare")
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env, secret = prepare(Path(tmp) / "var")
        print(cpu_machine())
        print("| poll interval | p50 queue wait | p90 | max | worker CPU idle |")
        print("|---|---|---|---|---|")
        for poll in args.poll or [1.0, 0.02]:
            r = run(env, secret, poll, args.jobs, Path(tmp))
            print(f"| {r['poll']:g} s | {r['p50'] * 1000:.0f} ms | {r['p90'] * 1000:.0f} ms | {r['max'] * 1000:.0f} ms "
                  f"| {r['idle_cpu'] * 100:.1f}% of a core |", flush=True)


if __name__ == "__main__":
    main()
