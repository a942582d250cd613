"""Grafana in docker-compose.yml: its datasource and the dashboard are provisioned from
deploy/grafana/ and point at each other (no Docker here: the files are parsed and cross-checked).
The metric names the dashboard and the alert rules use are checked against what the running
services export in tests/integration/test_observability_metrics.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
PROVISIONING = GRAFANA / "provisioning"

_PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels, keywords, numbers)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def dashboard() -> dict[str, Any]:
    data = json.loads((GRAFANA / "dashboard.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def dashboard_exprs() -> list[str]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]


def alert_exprs() -> list[str]:
    doc = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8"))
    return [str(r["expr"]) for g in doc["groups"] for r in g["rules"]]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _grafana_service() -> dict[str, Any]:
    svc = _yaml(ROOT / "docker-compose.yml")["services"]["grafana"]
    assert isinstance(svc, dict)
    return svc


def _mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path (bind mounts of repository files only)."""
    out = {}
    for vol in svc["volumes"]:
        host, target, *_ = str(vol).split(":")
        if host.startswith("./"):
            out[target] = ROOT / host
    return out


def test_promql_metric_names_with_functions_labels_and_keywords_keeps_only_metrics() -> None:
    expr = (
        'sum by (kind) (increase(router_alerts_total{kind=~"A|B"}[5m])) > 0 '
        "and on (service) histogram_quantile(0.95, sum by (le) (rate(x_bucket[1m]))) "
        "or absent(md_last_publish_timestamp_seconds) unless up == 0 offset 5m"
    )
    got = promql_metric_names(expr)
    assert got == {"router_alerts_total", "x_bucket", "md_last_publish_timestamp_seconds", "up"}


def test_compose_grafana_with_provisioning_and_dashboard_mounted_read_only() -> None:
    svc = _grafana_service()
    assert svc["profiles"] == ["observability"]
    assert svc["ports"] == ["127.0.0.1:3000:3000"], "loopback only, like every published port"
    mounts = _mounts(svc)
    assert mounts["/etc/grafana/provisioning"] == PROVISIONING
    assert all(str(v).endswith(":ro") for v in svc["volumes"] if str(v).startswith("./"))
    env = svc["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "prometheus" in svc["depends_on"]
    # The home dashboard is the provisioned file.
    assert mounts[env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]] == GRAFANA / "dashboard.json"


def test_grafana_datasource_with_compose_prometheus_is_the_default() -> None:
    compose = _yaml(ROOT / "docker-compose.yml")["services"]
    (ds,) = _yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"]).groups()
    assert host in compose and compose[host]["profiles"] == ["observability"]
    assert any(p.endswith(f":{port}") for p in compose[host]["ports"])
    scrape = _yaml(ROOT / "deploy/prometheus/prometheus.yml")["global"]["scrape_interval"]
    assert ds["jsonData"]["timeInterval"] == scrape


def test_grafana_dashboard_provider_with_mounted_path_loads_the_dashboard() -> None:
    (provider,) = _yaml(PROVISIONING / "dashboards" / "chimera.yml")["providers"]
    assert provider["type"] == "file"
    mounts = _mounts(_grafana_service())
    files = {t: h for t, h in mounts.items() if t.startswith(provider["options"]["path"] + "/")}
    assert list(files.values()) == [GRAFANA / "dashboard.json"]


def test_grafana_dashboard_with_datasource_variable_reads_prometheus_everywhere() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"]
    (var,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert var["query"] == "prometheus"
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": f"${{{var['name']}}}"}
    assert dashboard_exprs(), "the dashboard has queries"
