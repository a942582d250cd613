"""Prometheus' own checker on the alert rules and the scrape config: `promtool check rules`,
`promtool test rules` (deploy/prometheus/tests/: each rule fires on the series the services
export, with its labels and rendered annotations, and stays quiet otherwise) and
`promtool check config`.

promtool comes from Debian's `prometheus` package, installed by scripts/install_promtool.sh
(which `make test` runs); where it cannot be installed the tests skip, saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))


def _promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.skip(
            "promtool not installed: run scripts/install_promtool.sh (Debian's prometheus "
            "package; needs root and apt-get)"
        )
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_rules_with_alerts_yml_passes() -> None:
    proc = _run("check", "rules", str(PROM / "alerts.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules_with_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    proc = _run("test", "rules", *map(str, RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rule_unit_tests_with_alert_kind_rules_cover_each_one() -> None:
    """The rules this repository added for the alert kinds and the reconciler are exercised."""
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in group["alert_rule_test"]
        if case.get("exp_alerts")
    }
    must = {
        "RouterAlertCritical",
        "RouterAlertWarning",
        "StrategyAlertCritical",
        "StrategyAlertWarning",
        "RouterReconcileFindings",
        "RouterReconcileFindingCritical",
        "MarketDataStale",
        "RouterCircuitBreakerOpen",
        "RouterOverfill",
        "ChimeraTargetDown",
    }
    assert must <= tested, must - tested


def test_promtool_check_config_with_scrape_config_passes(tmp_path: Path) -> None:
    """Debian's build has no kubernetes_sd_configs: there the Kubernetes job is checked by the
    schema-less parse in test_deploy_files, the rest of the config by promtool."""
    proc = _run("check", "config", str(PROM / "prometheus.yml"))
    if proc.returncode != 0 and "kubernetes_sd_configs" in proc.stdout + proc.stderr:
        config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
        config["scrape_configs"] = [
            job for job in config["scrape_configs"] if "kubernetes_sd_configs" not in job
        ]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
        proc = _run("check", "config", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
