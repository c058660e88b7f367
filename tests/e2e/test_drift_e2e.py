"""Drift metrics on a real stack: a worker serving in-domain SST-2 sentences and then
out-of-domain text (another script, random characters) exports a rising OOV ratio and drift
score for the version; a version registered without a reference says so."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from seqserve.services.trainer.datasets import read_sst2
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.service import NewVersion, register_version
from tests import processes
from tests.conftest import DATA_DIR

pytestmark = pytest.mark.e2e


def _serve(base: str, model: str, texts: list[str]) -> None:
    job = processes.post(f"{base}/v1/jobs", json={"kind": "classify", "model": model, "inputs": texts}).json()
    assert processes.wait_job(base, job["id"])["status"] == "succeeded"


def _gauge(samples: dict[str, float], name: str, **labels: str) -> float:
    matching = [v for k, v in samples.items() if k.partition("{")[0] == name
                and all(f'{key}="{value}"' in k for key, value in labels.items())]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


def test_drift_metrics_move_when_the_inputs_change(db: str, registered_model: str, tiny_classifier,  # type: ignore[no-untyped-def]
                                                   stack_env: dict[str, str], tmp_path: Path) -> None:
    port = processes.free_port()
    env = stack_env | {"SEQSERVE_VAR_DIR": str(tmp_path / "var"), "SEQSERVE_WORKER_METRICS_PORT": str(port)}
    metrics = f"http://127.0.0.1:{port}/metrics"
    with session_scope() as session:  # the same checkpoint, as if registered before references existed
        register_version(session, NewVersion(
            model_name="old-sst2", task="classify", checkpoint_uri=str(tiny_classifier.checkpoint_path),
            sha256=tiny_classifier.sha256, size_bytes=tiny_classifier.size_bytes, metrics=tiny_classifier.metrics,
            primary_metric="accuracy", dataset_fingerprint=tiny_classifier.data_fingerprint))
    dev = [sentence for sentence, _ in read_sst2(DATA_DIR / "sst2/glue/dev.tsv")]
    rng = random.Random(7)
    noise = ["".join(rng.choice("xqzj#@%&0123456789") for _ in range(rng.randint(5, 40))) for _ in range(100)]
    russian = ["очень скучный и слишком длинный фильм", "прекрасная игра актёров и музыка"] * 50
    version = {"model": registered_model, "version": "1"}
    with processes.running(env, tmp_path, ["worker", "--concurrency", "1"]) as base:
        _serve(base, registered_model, dev[:100])
        before = processes.scrape(metrics)
        _serve(base, registered_model, noise + russian)
        after = processes.scrape(metrics)
        _serve(base, "old-sst2:1", dev[:20])
        unreferenced = processes.scrape(metrics)
        time.sleep(2.5)  # the worker publishes a live summary at most every 2 s
        _serve(base, registered_model, russian[:10])
        _serve(base, "old-sst2:1", dev[20:30])
        over_http = processes.get(f"{base}/v1/models/{registered_model}/drift").json()
        old_over_http = processes.get(f"{base}/v1/models/old-sst2/drift").json()
        assert processes.get(f"{base}/v1/models/nobody/drift").status_code == 404
    (served,) = over_http
    assert served["reference"]["labels"] == ["negative", "positive"] and served["note"] is None
    assert served["live"]["oov_ratio"] > served["reference"]["oov_ratio"] and served["scores"]["chars"] > 0.25
    (unreferenced_version,) = old_over_http
    assert unreferenced_version["reference"] is None and "no reference" in unreferenced_version["note"]
    assert unreferenced_version["live"]["inputs"] > 0 and unreferenced_version["scores"] == {}
    assert _gauge(before, "seqserve_drift_reference_present", **version) == 1
    oov_before, oov_after = (_gauge(s, "seqserve_input_oov_ratio", **version) for s in (before, after))
    reference_oov = _gauge(before, "seqserve_reference_oov_ratio", **version)
    # Dev looks like dev (the tiny model's vocabulary, from 600 sentences, misses ~1 word in 4).
    assert oov_before < 0.4 and abs(oov_before - reference_oov) < 0.05, (oov_before, reference_oov)
    # The window (1000 inputs) still holds the dev inputs, which carry most of the tokens.
    assert oov_after > oov_before + 0.1, (oov_before, oov_after)
    chars_before, chars_after = (_gauge(s, "seqserve_drift_score", **version, aspect="chars") for s in (before, after))
    assert chars_before < 0.1 and chars_after > 0.25, (chars_before, chars_after)  # 0.25: the alert's bound
    shares = [_gauge(after, "seqserve_prediction_share", **version, label=label) for label in ("negative", "positive")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    assert processes.metric_total(after, "seqserve_input_tokens_count", **version) == 300
    old = {"model": "old-sst2", "version": "1"}
    assert _gauge(unreferenced, "seqserve_drift_reference_present", **old) == 0
    assert _gauge(unreferenced, "seqserve_input_oov_ratio", **old) < 0.4
    assert processes.metric_total(unreferenced, "seqserve_drift_score", **old) == 0
