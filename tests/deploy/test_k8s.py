"""deploy/k8s: the core manifests validate against the Kubernetes schemas (offline, strict),
the KEDA objects are checked for what KEDA needs, and the pieces refer to each other and to
the code correctly (commands, queues, ports, volumes, the broker address)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from seqserve.services.cli import build_parser
from seqserve.shared.config import Settings
from seqserve.shared.queueing import INFERENCE_QUEUES, PRIORITY_QUEUES
from tests.deploy.queries import DEPLOY, load_yaml

K8S_DIR = DEPLOY / "k8s"
K8S_VERSION = "1.30"  # the oldest Kubernetes these manifests promise to work on
KEDA_API = "keda.sh/v1alpha1"
MANIFESTS = sorted(path for path in K8S_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


DOCS = _documents()
CORE = [(path, doc) for path, doc in DOCS if not doc["apiVersion"].startswith("keda.sh/")]


def _one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [doc for _, doc in DOCS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return doc


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def _workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] in ("Deployment", "Job")]


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets from the ConfigMap, the Secret and its own env."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values |= _one("ConfigMap", source["configMapRef"]["name"])["data"]
        if "secretRef" in source:
            values |= _one("Secret", source["secretRef"]["name"])["stringData"]
    return values | {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.mark.parametrize("doc", [doc for _, doc in CORE], ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}")
def test_core_manifest_is_valid(doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")


def test_kustomization_lists_every_manifest_and_everything_is_namespaced() -> None:
    kustomization = load_yaml(K8S_DIR / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(path.name for path in MANIFESTS)
    for _, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == kustomization["namespace"] == "seqserve", doc["metadata"]["name"]


def test_the_stack_is_complete() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCS}
    assert {
        ("Namespace", "seqserve"), ("ConfigMap", "seqserve-config"), ("Secret", "seqserve-secrets"),
        ("Deployment", "seqserve-api"), ("Service", "seqserve-api"), ("Deployment", "seqserve-worker"),
        ("Deployment", "seqserve-gpu-worker"), ("Deployment", "seqserve-beat"), ("Deployment", "seqserve-trainer"),
        ("Job", "seqserve-migrate"), ("PersistentVolumeClaim", "seqserve-checkpoints"),
        ("ScaledObject", "seqserve-worker"),
    } <= kinds


@pytest.mark.parametrize("doc", _workloads(), ids=lambda doc: doc["metadata"]["name"])
def test_workload_runs_a_cli_subcommand_with_resources_and_settings(doc: dict[str, Any]) -> None:
    parser = build_parser()
    spec = _pod_spec(doc)
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in spec["containers"]:
        assert container["command"][0] == "seqserve"
        assert callable(parser.parse_args(container["command"][1:]).func)  # exits on an unknown subcommand
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        env = _env(container)
        assert env["SEQSERVE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["SEQSERVE_BROKER_URL"].startswith("redis://")
    claims = {doc["metadata"]["name"] for _, doc in DOCS if doc["kind"] == "PersistentVolumeClaim"}
    for volume in spec.get("volumes", []):
        assert volume["persistentVolumeClaim"]["claimName"] in claims
    mounted = {mount["name"] for container in spec["containers"] for mount in container.get("volumeMounts", [])}
    assert mounted == {volume["name"] for volume in spec.get("volumes", [])}


def test_api_probes_and_service() -> None:
    api = _one("Deployment", "seqserve-api")
    (container,) = _pod_spec(api)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["port"] in ports
    assert container["command"][container["command"].index("--port") + 1] == str(ports["http"])
    service = _one("Service", "seqserve-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    assert api["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] in ports


def test_workers_are_restarted_when_they_stop_consuming() -> None:
    for name in ("seqserve-worker", "seqserve-gpu-worker"):
        (container,) = _pod_spec(_one("Deployment", name))["containers"]
        probe = container["livenessProbe"]["httpGet"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert probe["path"] == "/livez", name  # not /metrics: that answers while consumption is stuck
        assert ports[probe["port"]] == Settings.model_fields["worker_metrics_port"].default, name


def test_beat_is_a_singleton_that_never_overlaps() -> None:
    beat = _one("Deployment", "seqserve-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert _pod_spec(beat)["containers"][0]["command"] == ["seqserve", "beat"]


def test_trainer_consumes_the_training_queue_and_writes_checkpoints() -> None:
    trainer = _one("Deployment", "seqserve-trainer")
    (container,) = _pod_spec(trainer)["containers"]
    assert container["command"] == ["seqserve", "trainer"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert not mounts[_env(container)["SEQSERVE_ARTIFACT_DIR"]].get("readOnly", False)
    assert mounts[_env(container)["SEQSERVE_DATA_DIR"]]["readOnly"] is True


def test_migrate_job_upgrades_the_database() -> None:
    job = _one("Job", "seqserve-migrate")
    assert _pod_spec(job)["containers"][0]["command"] == ["seqserve", "db", "upgrade"]
    assert _pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")


def test_gpu_worker_gets_one_gpu_on_a_gpu_node() -> None:
    gpu = _one("Deployment", "seqserve-gpu-worker")
    spec = _pod_spec(gpu)
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert _env(container)["SEQSERVE_DEVICE"] == "cuda"
    args = build_parser().parse_args(container["command"][1:])
    assert args.concurrency == 1
    assert set(args.queues.split(",")) == set(INFERENCE_QUEUES)


def test_workers_read_checkpoints_from_the_volume_the_trainer_writes() -> None:
    trainer = _pod_spec(_one("Deployment", "seqserve-trainer"))
    written = {v["persistentVolumeClaim"]["claimName"] for v in trainer["volumes"] if v["name"] == "checkpoints"}
    for name in ("seqserve-worker", "seqserve-gpu-worker"):
        spec = _pod_spec(_one("Deployment", name))
        read = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if v["name"] == "checkpoints"}
        assert read == written
        (container,) = spec["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "checkpoints"]
        assert mount["mountPath"] == _env(container)["SEQSERVE_ARTIFACT_DIR"]
    (claim,) = [doc for _, doc in DOCS if doc["kind"] == "PersistentVolumeClaim" and doc["metadata"]["name"] in written]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes share it


def test_metrics_endpoints_are_annotated_for_prometheus() -> None:
    for name in ("seqserve-api", "seqserve-worker", "seqserve-gpu-worker"):
        template = _one("Deployment", name)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        (container,) = template["spec"]["containers"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) in {port["containerPort"] for port in container["ports"]}
        if name != "seqserve-api":
            assert annotations["prometheus.io/port"] == _env(container)["SEQSERVE_WORKER_METRICS_PORT"]
        # prometheus-kubernetes.yml names the job seqserve-<component>, as the alert rules expect.
        assert "seqserve-" + template["metadata"]["labels"]["app.kubernetes.io/component"] == name


def test_keda_scales_the_worker_on_the_inference_queues() -> None:
    scaled = _one("ScaledObject", "seqserve-worker")
    assert scaled["apiVersion"] == KEDA_API
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target.get("apiVersion", "apps/v1") == "apps/v1"
    worker = _one("Deployment", target["name"])
    assert "replicas" not in worker["spec"], "KEDA owns the worker's replica count"
    assert scaled["spec"]["minReplicaCount"] >= 1  # the first job does not wait for a cold start
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
    triggers = scaled["spec"]["triggers"]
    assert {trigger["type"] for trigger in triggers} == {"postgresql"}
    # One trigger per priority queue, counting that priority's queued jobs in the job table.
    counted = sorted(re.search(r"priority = '(\w+)'", t["metadata"]["query"]).group(1) for t in triggers)
    assert sorted(PRIORITY_QUEUES[p] for p in counted) == sorted(INFERENCE_QUEUES)
    (container,) = _pod_spec(worker)["containers"]
    consumed = build_parser().parse_args(container["command"][1:]).queues or _env(container).get(
        "SEQSERVE_WORKER_QUEUES", Settings.model_fields["worker_queues"].default)
    assert set(INFERENCE_QUEUES) <= set(consumed.split(",")), "the scaled worker must consume what KEDA watches"
    database = urlsplit(_env(container)["SEQSERVE_DATABASE_URL"])
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert all(isinstance(value, str) for value in metadata.values()), "KEDA metadata values are strings"
        assert int(metadata["targetQueryValue"]) > 0
        assert "FROM jobs WHERE status = 'queued'" in metadata["query"]
        auth = _one("TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["apiVersion"] == KEDA_API
        for ref in auth["spec"]["secretTargetRef"]:
            connection = urlsplit(_one("Secret", ref["name"])["stringData"][ref["key"]])
            assert connection.scheme == "postgresql", "KEDA takes a libpq URL, not SQLAlchemy's"
            assert (connection.hostname, connection.port, connection.path) == (
                database.hostname, database.port, database.path), "KEDA must count the services' job table"


def test_the_maintenance_queue_has_a_worker_of_its_own_and_no_queue_is_left_out() -> None:
    consumed = {}
    for name in ("seqserve-worker", "seqserve-maintenance-worker"):
        (container,) = _pod_spec(_one("Deployment", name))["containers"]
        consumed[name] = _env(container)["SEQSERVE_WORKER_QUEUES"].split(",")
    assert consumed["seqserve-maintenance-worker"] == ["maintenance"]
    assert _one("Deployment", "seqserve-maintenance-worker")["spec"]["replicas"] == 1
    assert sorted(consumed["seqserve-worker"] + consumed["seqserve-maintenance-worker"]) == sorted(
        Settings.model_fields["worker_queues"].default.split(","))


def test_interactive_jobs_have_a_worker_that_takes_no_corpus_work() -> None:
    lane = _one("Deployment", "seqserve-interactive-worker")
    (container,) = _pod_spec(lane)["containers"]
    assert _env(container)["SEQSERVE_WORKER_QUEUES"].split(",") == ["inference.high", "inference.normal"]
    assert container["command"][container["command"].index("--concurrency") + 1] == "1"
    assert container["resources"]["limits"]["cpu"] == "1"
    (worker,) = _pod_spec(_one("Deployment", "seqserve-worker"))["containers"]
    assert {"inference.high", "inference.normal"} <= set(_env(worker)["SEQSERVE_WORKER_QUEUES"].split(","))
    assert lane["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9101"


def test_only_the_corpus_worker_with_its_own_cpu_writes_behind() -> None:
    """Results written behind the next pass make a corpus faster but take CPU from interactive
    processes on the same host: on for the k8s worker (its pod's CPU is its own), off (the
    default) for every other workload (docs/benchmarks/batches.md, 2026-12-04)."""
    assert Settings.model_fields["worker_write_behind"].default is False
    for doc in _workloads():
        for container in _pod_spec(doc)["containers"]:
            wanted = "true" if doc["metadata"]["name"] == "seqserve-worker" else None
            assert _env(container).get("SEQSERVE_WORKER_WRITE_BEHIND") == wanted, doc["metadata"]["name"]
