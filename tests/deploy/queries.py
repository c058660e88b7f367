"""The PromQL that deploy/ ships: alert rules and Grafana panel queries, read from the files
operators deploy, plus the few text transformations the tests need to run them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.processes import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_K8S_CONFIG = PROMETHEUS_DIR / "prometheus-kubernetes.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))

# Grafana's built-in interval variables, given values that suit a 1 s scrape interval.
GRAFANA_BUILTINS = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "5m"}

# A comparison against a number literal (`> 0.05`, `== 0`, `>= 10`): the threshold part of
# an alert condition. Label matchers (`!="x"`) never match: a number must follow.
_THRESHOLD = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.:])")
_OFFSET = re.compile(r"\s+offset\s+\d+[smhdwy]")
# seqserve's metrics and `up`, with their label matchers; not preceded by a name character
# or a quote (label values), not followed by `(` (a function).
_SELECTOR = re.compile(r'(?<![\w:"-])(seqserve_[a-z0-9_]+|up)(?![\w(:])(\{[^}]*\})?')


@dataclass(frozen=True)
class Query:
    origin: str  # "alert SeqserveX" or "overview.json: panel title"
    expr: str


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in board.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def template_variables(board: dict[str, Any]) -> list[str]:
    return [variable["name"] for variable in board.get("templating", {}).get("list", [])]


def render_grafana(expr: str, variables: list[str]) -> str:
    """The query Grafana sends with every template variable on "All" (its allValue `.*`)."""
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    for name in variables:
        expr = expr.replace("${" + name + "}", ".*").replace("$" + name, ".*")
    return expr


def dashboard_queries() -> list[Query]:
    queries = []
    for name, board in dashboards().items():
        variables = template_variables(board)
        for panel in panels(board):
            for target in panel.get("targets", []):
                queries.append(Query(f"{name}: {panel['title']}", render_grafana(target["expr"], variables)))
    return queries


def alert_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def without_thresholds(expr: str) -> str:
    """An alert condition reduced to the signal it compares: thresholds and offsets dropped,
    absent(x) read as x. On a healthy, busy stack this returns series even though the alert
    itself (rightly) returns none."""
    expr = _THRESHOLD.sub("", expr)
    expr = _OFFSET.sub("", expr)
    return expr.replace("absent(", "(")


def selectors(expr: str) -> list[str]:
    """The vector selectors of `expr` (metric name plus label matchers), without ranges."""
    return sorted({name + (labels or "") for name, labels in _SELECTOR.findall(expr)})


def metric_name(selector: str) -> str:
    return selector.split("{", 1)[0]


def declared_series() -> set[str]:
    """Every series name shared/metrics.py can produce (counters' _total, histograms'
    _bucket/_sum/_count), plus the names it declares for the API's database collector."""
    from prometheus_client.metrics import MetricWrapperBase

    import seqserve.shared.metrics as metrics

    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names |= {family.name + suffix for suffix in suffixes[family.type]}
        elif isinstance(collector, str) and collector.startswith("seqserve_"):
            names.add(collector)
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
