"""deploy/k8s/cronjob-rebalance.yaml: the 15-minute job's CronJob (issue 14)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"


def test_cronjob_calls_the_15_min_job_every_15_minutes_never_concurrently() -> None:
    cj = yaml.safe_load((K8S / "cronjob-rebalance.yaml").read_text())
    assert cj["kind"] == "CronJob" and cj["spec"]["schedule"] == "*/15 * * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    assert 0 < cj["spec"]["startingDeadlineSeconds"] <= 900
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["S3_TASK_URL"]["value"].endswith("/tasks/15-min-job")
    ref = env["S3_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "chimera-secrets", "key": "S3_ADMIN_TOKEN"}
    assert "REPLACE_ME" in (K8S / "secret.template.yaml").read_text().split("S3_ADMIN_TOKEN:")[1]
    script = c["command"][-1]
    compile(script, "cronjob", "exec")  # the inline caller is valid Python
    assert "X-CloudScheduler-ScheduleTime" in script  # retries of a slot replay, never re-trade
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "cronjob-rebalance.yaml" in kust["resources"]
