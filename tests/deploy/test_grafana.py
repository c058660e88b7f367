"""Grafana provisioning and dashboards: valid JSON, every panel queries the provisioned
Prometheus datasource, and every query speaks of metrics seqserve declares."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.queries import (
    DASHBOARDS,
    GRAFANA_DIR,
    dashboards,
    declared_series,
    load_yaml,
    metric_name,
    panels,
    render_grafana,
    selectors,
    template_variables,
)

EXPECTED = {"overview.json", "models.json", "training.json"}


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    (source,) = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    return source


def test_datasource_points_at_the_compose_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"]


def test_dashboard_provider_loads_the_dashboards_folder() -> None:
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "seqserve.yml")["providers"]
    assert provider["type"] == "file"
    # docker-compose.yml mounts deploy/grafana/dashboards at this path (test_compose checks).
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/seqserve"


def test_the_three_dashboards_exist_with_unique_uids() -> None:
    assert {path.name for path in DASHBOARDS} == EXPECTED
    uids = [board["uid"] for board in dashboards().values()]
    assert len(set(uids)) == len(uids) and all(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_queries_the_provisioned_datasource(path, datasource: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    board = json.loads(path.read_text())  # invalid JSON fails here
    assert board["title"] and panels(board)
    ids = [panel["id"] for panel in panels(board)]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"])["uid"] == datasource["uid"], panel["title"]
    for variable in board.get("templating", {}).get("list", []):
        assert variable["datasource"]["uid"] == datasource["uid"], variable["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panel_queries_use_declared_metrics_and_defined_variables(path) -> None:  # type: ignore[no-untyped-def]
    board = json.loads(path.read_text())
    declared = declared_series() | {"up"}
    variables = template_variables(board)
    for panel in panels(board):
        for target in panel.get("targets", []):
            rendered = render_grafana(target["expr"], variables)
            assert "$" not in rendered, f"{panel['title']}: undefined variable in {target['expr']}"
            found = selectors(rendered)
            assert found, f"{panel['title']}: no seqserve metric in {target['expr']}"
            for selector in found:
                assert metric_name(selector) in declared, f"{panel['title']}: {selector} is not in shared/metrics.py"


def test_dashboards_cover_what_operators_watch() -> None:
    text = {name: json.dumps(board) for name, board in dashboards().items()}
    for metric in ("seqserve_jobs_finished_total", "seqserve_job_end_to_end_seconds_bucket", "seqserve_queue_depth",
                   "seqserve_batch_inputs_bucket", "seqserve_jobs_rejected_total",
                   "seqserve_handler_stage_seconds_bucket", "seqserve_corpus_batches",
                   "seqserve_corpus_batch_inputs_total"):
        assert metric in text["overview.json"], metric
    for metric in ("seqserve_model_alias_version", "seqserve_model_load_seconds", "seqserve_model_version_metric",
                   "seqserve_model_load_errors_total", "seqserve_shadow_inputs_total",
                   "seqserve_version_jobs_finished_total", "seqserve_version_job_seconds_bucket"):
        assert metric in text["models.json"], metric
    for metric in ("seqserve_registry_training_runs", "seqserve_model_version_metric"):
        assert metric in text["training.json"], metric
    for p in (0.5, 0.95, 0.99):
        end_to_end = f"histogram_quantile({p}, sum by (kind, le) (rate(seqserve_job_end_to_end_seconds_bucket"
        assert end_to_end in text["overview.json"]
    for p in (0.5, 0.95):  # where a kind's compute time goes: each handler stage
        stages = f"histogram_quantile({p}, sum by (kind, stage, le) (rate(seqserve_handler_stage_seconds_bucket"
        assert stages in text["overview.json"]
