"""The Prometheus configuration and alert rules: promtool accepts them, the rule unit tests
pass, and every alert is documented and speaks only of metrics seqserve declares."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.queries import (
    PROMETHEUS_CONFIG,
    PROMETHEUS_K8S_CONFIG,
    RULE_TESTS_DIR,
    RULES_DIR,
    alert_rules,
    declared_series,
    load_yaml,
    metric_name,
    selectors,
)
from tests.processes import REPO_ROOT

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RUNBOOK = REPO_ROOT / "docs" / "operations.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool (Debian's prometheus package) is needed"
    return subprocess.run([binary, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def _assert_success(out: subprocess.CompletedProcess[str]) -> str:
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "SUCCESS" in text and "FAILED" not in text, text
    return text


def test_compose_config_is_valid_and_loads_the_rules() -> None:
    text = _assert_success(promtool("check", "config", str(PROMETHEUS_CONFIG)))
    # rule_files is relative to the config, as in the container: the rules are found.
    assert load_yaml(PROMETHEUS_CONFIG)["rule_files"] == ["rules/*.yml"]
    for path in RULE_FILES:
        assert str(path.relative_to(REPO_ROOT)) in text, text


def test_kubernetes_config_is_valid(tmp_path: Path) -> None:
    # Debian's promtool is built without Kubernetes service discovery; check everything else
    # (relabeling included) with the SD block swapped for a static target.
    config = load_yaml(PROMETHEUS_K8S_CONFIG)
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
        job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(yaml.safe_dump(config))
    _assert_success(promtool("check", "config", str(rendered)))
    relabel = {rule.get("target_label"): rule for rule in config["scrape_configs"][0]["relabel_configs"]}
    assert relabel["job"]["replacement"] == "seqserve-$1"


def test_rules_are_valid() -> None:
    text = _assert_success(promtool("check", "rules", *map(str, RULE_FILES)))
    assert f"{len(alert_rules())} rules found" in text


def test_rule_unit_tests_pass() -> None:
    tests = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert tests
    text = _assert_success(promtool("test", "rules", *map(str, tests)))
    assert text.count("SUCCESS") == len(tests), text


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested staying silent"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_annotated_and_has_a_runbook(rule: dict) -> None:
    annotations = rule["annotations"]
    assert annotations.get("summary") and annotations.get("description"), rule["alert"]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    path, _, anchor = annotations["runbook"].partition("#")
    assert (REPO_ROOT / path) == RUNBOOK and anchor == rule["alert"].lower()
    headings = {line.lstrip("#").strip().lower() for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    assert anchor in headings, f"docs/operations.md has no '### {rule['alert']}' section"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_uses_declared_metrics_and_scraped_jobs(rule: dict) -> None:
    declared = declared_series() | {"up"}
    for selector in selectors(rule["expr"]):
        assert metric_name(selector) in declared, f"{rule['alert']}: {selector} is not in shared/metrics.py"
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    for value in re.findall(r'job=~?"([^"]+)"', rule["expr"]):
        assert set(value.split("|")) <= jobs, f"{rule['alert']} selects jobs Prometheus does not scrape: {value}"
