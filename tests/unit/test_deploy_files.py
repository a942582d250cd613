"""Offline checks of the deployment files: compose, Dockerfiles, k8s, Prometheus, Grafana.

No Docker engine or cluster is needed: the files are parsed and cross-checked against the
repository (paths exist, names referenced are defined, every S3_*/S4_* setting is wired).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from svckit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKER_DIR = DEPLOY / "docker"
K8S_DIR = DEPLOY / "k8s"
PROM_DIR = DEPLOY / "prometheus"
RUNBOOKS = ROOT / "runbooks"

SERVICES = {
    # compose service -> (Dockerfile, python module, uv package, host port, env prefix)
    "s3-strategy": ("s3_strategy.Dockerfile", "s3_strategy", "s3-strategy", 8081, "S3"),
    "s4-router": ("s4_router.Dockerfile", "s4_router", "s4-router", 8082, "S4"),
}
# Every image the repository builds: S3, S4 and the market-data feeder (no store, no API token).
IMAGES = SERVICES | {
    "md-feeder": ("md_feeder.Dockerfile", "md_feeder", "md-feeder", 8083, "MD"),
}

# Which settings are secrets is read from the Settings classes (SecretStr); which must exist in
# the Secret is this list. Every other S3_*/S4_* setting is checked against the ConfigMaps by
# test_configmaps_with_settings_classes_carry_every_variable, from the same classes.
SECRET_VARS = {
    "S3_DB_ARANGO_PASS",
    "S4_DB_ARANGO_PASS",
    "S4_BINANCE_KEY",
    "S4_BINANCE_SECRET",
    "S3_API_TOKEN",
    "S3_ADMIN_TOKEN",
    "S4_API_TOKEN",
}

ALERTED_METRICS = {
    "router_circuit_breaker_state",
    "router_maker_fill_ratio",
    "router_stream_lag",
    "s3_publish_undelivered_total",
    "s3_decide_latency_seconds",
    "router_naked_seconds",
    "router_oco_guardian_anomalies_total",
}
DASHBOARD_METRICS = ALERTED_METRICS | {
    "s3_publish_failures_total",
    "s3_rules_fired_total",
    "s3_gate_skips_total",
    "router_submit_latency_seconds",
    "router_taker_rate",
    "router_slippage_bps",
    "router_fees_usdt_total",
}
REQUIRED_RUNBOOKS = {
    "README.md",
    "circuit-breaker.md",
    "oco-guardian-anomaly.md",
    "cancel-replace-failure.md",
    "stream-lag.md",
}


# ---------------------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose() -> dict[str, Any]:
    data = _load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def _env_dict(env: Any) -> dict[str, str]:
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{path.name}: dangling line continuation"
    out = []
    for line in lines:
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def _resolve_args(instructions: list[tuple[str, str]], text: str) -> str:
    defaults: dict[str, str] = {}
    for instr, args in instructions:
        if instr == "ARG" and "=" in args:
            key, _, value = args.partition("=")
            defaults.setdefault(key.strip(), value.strip())
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), text)


def _copy_sources(args: str) -> tuple[list[str], bool]:
    """Source paths of a COPY and whether it copies from another stage (--from)."""
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    assert len(paths) >= 2, f"COPY needs a source and a destination: {args}"
    return paths[:-1], any(f.startswith("--from") for f in flags)


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = Path(rel).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        if any(fnmatch.fnmatch(p, pat) for p in prefixes):
            ignored = not negate
    return ignored


def _k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path, doc))
    return docs


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _k8s_docs() if d.get("kind") == kind}


def _secret_keys(secret: dict[str, Any]) -> set[str]:
    return set(secret.get("stringData") or {}) | set(secret.get("data") or {})


def _alert_rules() -> list[dict[str, Any]]:
    data = _load_yaml(PROM_DIR / "alerts.yml")
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _dashboard_panels() -> list[dict[str, Any]]:
    dash = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text(encoding="utf-8"))
    panels: list[dict[str, Any]] = []
    for panel in dash["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


# ---------------------------------------------------------------------------- compose


def test_compose_with_all_services_declares_redis_arango_s3_s4() -> None:
    services = _compose()["services"]
    assert {"redis", "arangodb", "s3-strategy", "s4-router"} <= set(services)


@pytest.mark.parametrize(("service", "image"), [("redis", "redis"), ("arangodb", "arangodb")])
def test_compose_with_backing_store_uses_official_image_and_healthcheck(
    service: str, image: str
) -> None:
    svc = _compose()["services"][service]
    name, _, tag = svc["image"].partition(":")
    assert name == image, "official Docker Hub image (no registry or namespace)"
    assert tag, "pinned tag"
    assert svc["healthcheck"]["test"]


def test_compose_with_redis_healthcheck_runs_redis_cli_ping() -> None:
    test = _compose()["services"]["redis"]["healthcheck"]["test"]
    assert "redis-cli" in test
    assert "ping" in test


def test_compose_with_arango_password_reads_env_with_dev_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.search(r"ARANGO_ROOT_PASSWORD: \$\{ARANGO_ROOT_PASSWORD:-[^}]+\}", text)


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_compose_with_app_service_builds_from_existing_dockerfile(service: str) -> None:
    dockerfile, *_ = IMAGES[service]
    build = _compose()["services"][service]["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == f"deploy/docker/{dockerfile}"
    assert (ROOT / build["dockerfile"]).is_file()


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_compose_with_app_service_publishes_host_port_to_8080(service: str) -> None:
    *_, host_port, prefix = IMAGES[service]
    svc = _compose()["services"][service]
    # Published on the host's loopback only: the LAN cannot reach the stack.
    assert [str(p) for p in svc["ports"]] == [f"127.0.0.1:{host_port}:8080"]
    env = _env_dict(svc["environment"])
    assert env[f"{prefix}_PORT"] == "8080"
    assert env[f"{prefix}_HOST"] == "0.0.0.0", "the settings default 127.0.0.1 is unreachable"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_with_dependencies_waits_until_healthy(service: str) -> None:
    services = _compose()["services"]
    depends = services[service]["depends_on"]
    assert {"redis", "arangodb"} <= set(depends)
    for dep, spec in depends.items():
        assert spec["condition"] == "service_healthy", dep
        healthcheck = services[dep].get("healthcheck")
        image_has_healthcheck = "build" in services[dep]  # our Dockerfiles declare HEALTHCHECK
        assert healthcheck or image_has_healthcheck, f"{dep} has no healthcheck"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_with_app_env_wires_redis_and_arango_service_names(service: str) -> None:
    prefix = SERVICES[service][4]
    env = _env_dict(_compose()["services"][service]["environment"])
    assert env[f"{prefix}_REDIS_ADDRESSES"] == "redis:6379"
    assert env[f"{prefix}_DB_ARANGO_URI"] == "http://arangodb:8529"


def test_compose_with_s3_env_points_at_s4_service() -> None:
    env = _env_dict(_compose()["services"]["s3-strategy"]["environment"])
    assert env["S3_S4_URL"] == "http://s4-router:8080"


def test_compose_with_default_env_uses_simulated_exchange_on_testnet() -> None:
    env = _env_dict(_compose()["services"]["s4-router"]["environment"])
    assert env["S4_EXCHANGE"] in {"sim", "${S4_EXCHANGE:-sim}"}
    assert env["S4_TESTNET"] in {"true", "${S4_TESTNET:-true}"}


def test_compose_with_route_table_mounts_fixture_read_only() -> None:
    svc = _compose()["services"]["s4-router"]
    env = _env_dict(svc["environment"])
    mount = "./fixtures/route_table.json:/etc/chimera/route.json:ro"
    assert mount in svc["volumes"]
    assert env["S4_ROUTE_TABLE_PATH"] == "/etc/chimera/route.json"
    # A missing bind source would make Docker create a directory in its place.
    assert (ROOT / "fixtures" / "route_table.json").is_file()


# ---------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_stages_builds_on_python_311_slim(service: str) -> None:
    path = DOCKER_DIR / IMAGES[service][0]
    instructions = _dockerfile_instructions(path)
    froms = [_resolve_args(instructions, a).split()[0] for i, a in instructions if i == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    assert all(f.startswith("python:3.11") for f in froms), froms


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_builder_installs_pinned_uv_and_syncs_frozen(service: str) -> None:
    _, _, package, _, _ = IMAGES[service]
    runs = [a for i, a in _dockerfile_instructions(DOCKER_DIR / IMAGES[service][0]) if i == "RUN"]
    assert any(re.search(r"pip install .?uv==0\.13\.9", r) for r in runs)
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs
    for run in syncs:
        assert "--frozen" in run
        assert "--no-dev" in run
        assert f"--package {package}" in run


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_runtime_stage_runs_as_numeric_non_root_user(service: str) -> None:
    instructions = _dockerfile_instructions(DOCKER_DIR / IMAGES[service][0])
    users = [a for i, a in instructions if i == "USER"]
    assert users
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) == 10001


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_service_exposes_8080_and_runs_module(service: str) -> None:
    _, module, _, _, prefix = IMAGES[service]
    instructions = _dockerfile_instructions(DOCKER_DIR / IMAGES[service][0])
    assert ("EXPOSE", "8080") in instructions
    cmds = [json.loads(a) for i, a in instructions if i == "CMD"]
    assert cmds[-1] == ["python", "-m", module]
    env = " ".join(a for i, a in instructions if i == "ENV")
    assert f"{prefix}_PORT=8080" in env
    assert f"{prefix}_HOST=0.0.0.0" in env


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_healthcheck_probes_health_with_python(service: str) -> None:
    instructions = _dockerfile_instructions(DOCKER_DIR / IMAGES[service][0])
    checks = [a for i, a in instructions if i == "HEALTHCHECK"]
    assert len(checks) == 1
    cmd = checks[0].split("CMD", 1)[1].strip()
    argv = json.loads(cmd)
    assert argv[0] == "python"
    assert "/health" in argv[-1]
    compile(argv[-1], "<healthcheck>", "exec")  # the -c program is valid Python


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_copy_sources_exist_and_are_not_dockerignored(service: str) -> None:
    instructions = _dockerfile_instructions(DOCKER_DIR / IMAGES[service][0])
    patterns = _dockerignore_patterns()
    copied = []
    for instr, args in instructions:
        if instr not in {"COPY", "ADD"}:
            continue
        sources, from_stage = _copy_sources(args)
        if from_stage:
            continue
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} missing"
            assert not _ignored(src, patterns), f"COPY source {src} is in .dockerignore"
            copied.append(src)
    assert "uv.lock" in copied


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_dockerfile_with_uv_workspace_copies_every_member_manifest_before_sync(
    service: str,
) -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members = root["tool"]["uv"]["workspace"]["members"]
    instructions = _dockerfile_instructions(DOCKER_DIR / IMAGES[service][0])
    first_sync = next(n for n, (i, a) in enumerate(instructions) if "uv sync" in a)
    before: list[str] = []
    after: list[str] = []
    for n, (instr, args) in enumerate(instructions):
        if instr == "COPY" and not _copy_sources(args)[1]:
            (before if n < first_sync else after).extend(_copy_sources(args)[0])
    # uv reads the whole workspace even for one --package.
    for member in members:
        assert f"{member}/pyproject.toml" in before, member
    assert {"pyproject.toml", "uv.lock"} <= set(before)
    # The service and every lib it may depend on are present for the final sync.
    assert "libs" in after
    assert f"services/{IMAGES[service][1]}" in after


def test_dockerignore_with_local_state_excludes_venv_tools_var_caches_git() -> None:
    patterns = _dockerignore_patterns()
    for path in (".venv", ".tools", "var", ".git", ".mypy_cache", "libs/svckit/__pycache__"):
        assert _ignored(path, patterns), path
    for path in ("pyproject.toml", "uv.lock", "libs/svckit/src", "services", "fixtures"):
        assert not _ignored(path, patterns), path


# ---------------------------------------------------------------------------- Kubernetes


def test_k8s_manifests_with_yaml_parse_and_carry_kind_and_name() -> None:
    docs = _k8s_docs()
    assert docs
    for path, doc in docs:
        assert doc.get("apiVersion"), path.name
        assert doc.get("kind"), path.name
        assert doc["metadata"]["name"], path.name


def test_k8s_kustomization_with_resources_lists_existing_manifests() -> None:
    kust = _load_yaml(K8S_DIR / "kustomization.yaml")
    resources = kust["resources"]
    assert resources
    for res in resources:
        assert (K8S_DIR / res).is_file(), res
    listed = set(resources)
    unlisted = {p.name for p in K8S_DIR.glob("*.yaml")} - listed - {"kustomization.yaml"}
    # Only the secret template stays out (apply -k must not overwrite live keys).
    assert unlisted == {"secret.template.yaml"}


def test_k8s_namespace_with_all_namespaced_objects_matches() -> None:
    namespaces = _by_kind("Namespace")
    assert len(namespaces) == 1
    (ns,) = namespaces
    for path, doc in _k8s_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == ns, path.name


def _secret_settings() -> set[str]:
    """S3_*/S4_* settings typed SecretStr (tokens, passwords, exchange keys)."""
    from s3_strategy.config import Settings as S3Settings
    from s4_router.config import Settings as S4Settings

    return {
        prefix + name.upper()
        for cls, prefix in ((S3Settings, "S3_"), (S4Settings, "S4_"))
        for name, field in cls.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }


def test_k8s_configmaps_with_s3_and_s4_settings_cover_every_variable() -> None:
    cms = _by_kind("ConfigMap")
    secret_keys = set().union(*(_secret_keys(s) for s in _by_kind("Secret").values()))
    s3 = set(cms["s3-strategy-config"]["data"])
    s4 = set(cms["s4-router-config"]["data"])
    assert secret_keys >= SECRET_VARS
    assert not (SECRET_VARS | _secret_settings()) & (s3 | s4), "secrets must not sit in a ConfigMap"
    for key in s3:
        assert key.startswith("S3_"), key
    for key in s4 - {"route.json"}:
        assert key.startswith("S4_"), key


def test_k8s_configmaps_with_values_are_strings() -> None:
    for name, cm in _by_kind("ConfigMap").items():
        for key, value in cm["data"].items():
            assert isinstance(value, str), f"{name}.{key} must be a string, got {value!r}"


def test_k8s_route_table_with_configmap_key_parses_as_fixture_bands() -> None:
    cm = _by_kind("ConfigMap")["s4-router-config"]
    bands = json.loads(cm["data"]["route.json"])
    fixture = json.loads((ROOT / "fixtures" / "route_table.json").read_text(encoding="utf-8"))
    assert bands
    assert isinstance(bands, type(fixture))
    for band in bands:
        assert set(band) == set(fixture[0]), band
    assert cm["data"]["S4_ROUTE_TABLE_PATH"] == "/etc/chimera/route.json"


def test_k8s_secret_template_with_values_holds_only_placeholders() -> None:
    secrets = _by_kind("Secret")
    assert secrets
    for secret in secrets.values():
        assert not secret.get("data"), "base64 data would hide real values"
        for key, value in secret["stringData"].items():
            assert value.startswith("REPLACE_ME"), key


PROBE_PATHS = {"readinessProbe": "/health", "livenessProbe": "/livez"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_k8s_deployment_with_pod_spec_has_replicas_probes_and_resources(name: str) -> None:
    dep = _by_kind("Deployment")[name]
    assert dep["spec"]["replicas"] == 2
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    # Readiness follows the dependencies; liveness only the process: a venue or Redis outage
    # must not restart every replica in a loop (a restart fixes neither).
    for probe, path in PROBE_PATHS.items():
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in (8080, "http")
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert {"containerPort": 8080, "name": "http"} in container["ports"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_k8s_deployment_with_security_context_runs_non_root_read_only(name: str) -> None:
    pod = _by_kind("Deployment")[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    csc = container["securityContext"]
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    data_dir = _by_kind("ConfigMap")[f"{name}-config"]["data"][f"{SERVICES[name][4]}_DATA_DIR"]
    assert "emptyDir" in volumes[mounts[data_dir]], "the data dir must be writable"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_k8s_deployment_with_env_refs_points_at_defined_configmaps_and_secrets(
    name: str,
) -> None:
    cms = _by_kind("ConfigMap")
    secrets = _by_kind("Secret")
    pod = _by_kind("Deployment")[name]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    refs = 0
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            assert src["configMapRef"]["name"] in cms
        if "secretRef" in src:
            assert src["secretRef"]["name"] in secrets
        refs += 1
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            cm = cms[ref["configMapKeyRef"]["name"]]
            assert ref["configMapKeyRef"]["key"] in cm["data"]
        if "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            secret = secrets[key_ref["name"]]
            assert key_ref.get("optional") or key_ref["key"] in _secret_keys(secret), var
            refs += 1
    for vol in pod["volumes"]:
        if "configMap" in vol:
            cm = cms[vol["configMap"]["name"]]
            for item in vol["configMap"].get("items", []):
                assert item["key"] in cm["data"]
    assert refs >= 2


def test_k8s_s4_deployment_with_route_table_mounts_configmap_at_path() -> None:
    pod = _by_kind("Deployment")["s4-router"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    path = _by_kind("ConfigMap")["s4-router-config"]["data"]["S4_ROUTE_TABLE_PATH"]
    item = volume["configMap"]["items"][0]
    assert item["key"] == "route.json"
    assert f"{mounts[volume['name']]['mountPath']}/{item['path']}" == path


def test_k8s_s4_deployment_with_exchange_keys_reads_them_from_secret_only() -> None:
    container = _by_kind("Deployment")["s4-router"]["spec"]["template"]["spec"]["containers"][0]
    env = {v["name"]: v for v in container["env"]}
    for key in ("S4_BINANCE_KEY", "S4_BINANCE_SECRET", "S4_DB_ARANGO_PASS"):
        assert "secretKeyRef" in env[key]["valueFrom"], key
    s3 = _by_kind("Deployment")["s3-strategy"]["spec"]["template"]["spec"]["containers"][0]
    assert not {v["name"] for v in s3["env"]} & {"S4_BINANCE_KEY", "S4_BINANCE_SECRET"}


def test_k8s_deployments_with_tokens_read_them_from_the_secret_not_the_configmap() -> None:
    def env(name: str) -> dict[str, Any]:
        pod = _by_kind("Deployment")[name]["spec"]["template"]["spec"]
        return {v["name"]: v for v in pod["containers"][0]["env"]}

    secret_keys = _secret_keys(_by_kind("Secret")["chimera-secrets"])
    wanted = {
        "s3-strategy": {
            "S3_API_TOKEN": "S3_API_TOKEN",
            "S3_ADMIN_TOKEN": "S3_ADMIN_TOKEN",
            "S3_S4_API_TOKEN": "S4_API_TOKEN",
        },  # S3 sends exactly S4's token
        "s4-router": {"S4_API_TOKEN": "S4_API_TOKEN"},
    }
    for name, refs in wanted.items():
        got = env(name)
        for var, key in refs.items():
            ref = got[var]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("chimera-secrets", key), var
            assert key in secret_keys and not ref.get("optional"), var
    cms = _by_kind("ConfigMap")
    in_cms = set(cms["s3-strategy-config"]["data"]) | set(cms["s4-router-config"]["data"])
    assert not {"S3_API_TOKEN", "S3_ADMIN_TOKEN", "S3_S4_API_TOKEN", "S4_API_TOKEN"} & in_cms
    # No dev switch in a cluster.
    assert cms["s3-strategy-config"]["data"]["S3_AUTH_DISABLED"] == "false"
    assert cms["s4-router-config"]["data"]["S4_AUTH_DISABLED"] == "false"


def test_k8s_network_policy_with_s4_admits_only_s3_pods_and_monitoring() -> None:
    (policy,) = _by_kind("NetworkPolicy").values()
    spec = policy["spec"]
    s4_labels = _by_kind("Deployment")["s4-router"]["spec"]["template"]["metadata"]["labels"]
    s3_labels = _by_kind("Deployment")["s3-strategy"]["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= s4_labels.items()
    assert spec["policyTypes"] == ["Ingress"]
    sources = []
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        assert rule["from"], "an empty `from` would admit everyone"
        sources.extend(rule["from"])
    pod_only = [s for s in sources if "namespaceSelector" not in s]
    # Same-namespace peers: the S3 pods and nothing else (an empty selector = every pod).
    assert len(pod_only) == 1
    assert pod_only[0]["podSelector"]["matchLabels"].items() <= s3_labels.items()
    assert pod_only[0]["podSelector"]["matchLabels"]
    (monitoring,) = [s for s in sources if "namespaceSelector" in s]
    assert monitoring["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert monitoring["podSelector"]["matchLabels"]  # Prometheus only, not the whole namespace
    assert not any("ipBlock" in s for s in sources)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_k8s_deployment_with_metrics_has_prometheus_scrape_annotations(name: str) -> None:
    annotations = _by_kind("Deployment")[name]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_k8s_service_and_pdb_with_deployment_labels_select_its_pods(name: str) -> None:
    pod_labels = _by_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    svc = _by_kind("Service")[name]
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    pdb = _by_kind("PodDisruptionBudget")[name]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1


# ---------------------------------------------------------------------------- Prometheus


def test_prometheus_config_with_scrape_jobs_targets_both_services() -> None:
    config = _load_yaml(PROM_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"s3-strategy", "s4-router"} <= set(jobs)
    for name in SERVICES:
        targets = jobs[name]["static_configs"][0]["targets"]
        assert targets == [f"{name}:8080"]
    for rule_file in config["rule_files"]:
        assert (PROM_DIR / rule_file).is_file()


def test_prometheus_alerts_with_required_metrics_cover_each_one() -> None:
    exprs = " ".join(str(rule["expr"]) for rule in _alert_rules())
    for metric in ALERTED_METRICS:
        assert metric in exprs, metric


def test_prometheus_alerts_with_runbook_url_point_at_existing_runbook_section() -> None:
    rules = _alert_rules()
    assert rules
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        rel, _, anchor = url[url.index("runbooks/") :].partition("#")
        runbook = ROOT / rel
        assert runbook.is_file(), f"{rule['alert']}: {rel}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", runbook.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{rule['alert']}: #{anchor}"


def test_prometheus_alerts_with_names_are_unique() -> None:
    names = [rule["alert"] for rule in _alert_rules()]
    assert len(names) == len(set(names))


# ---------------------------------------------------------------------------- Grafana, runbooks


def test_grafana_dashboard_with_json_has_panels_for_each_metric() -> None:
    panels = _dashboard_panels()
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for metric in DASHBOARD_METRICS:
        assert metric in exprs, metric
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


def test_runbooks_with_required_topics_exist_and_are_indexed() -> None:
    present = {p.name for p in RUNBOOKS.glob("*.md")}
    assert present >= REQUIRED_RUNBOOKS
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for name in present - {"README.md"}:
        assert f"]({name}" in index, f"{name} not linked from runbooks/README.md"


def test_runbooks_with_relative_links_resolve_to_files_and_sections() -> None:
    for path in RUNBOOKS.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target:
                continue
            rel, _, anchor = target.partition("#")
            dest = (path.parent / rel) if rel else path
            assert dest.is_file(), f"{path.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                assert anchor in {_slug(h) for h in headings}, f"{path.name}: {target}"


def test_configmaps_with_settings_classes_carry_every_variable() -> None:
    from s3_strategy.config import Settings as S3Settings
    from s4_router.config import Settings as S4Settings

    secret = (ROOT / "deploy/k8s/secret.template.yaml").read_text()
    for cls, name, prefix in (
        (S3Settings, "configmap-s3-strategy.yaml", "S3_"),
        (S4Settings, "configmap-s4-router.yaml", "S4_"),
    ):
        data = yaml.safe_load((ROOT / "deploy/k8s" / name).read_text())["data"]
        from_pod = {"S4_CONSUMER_NAME"}  # set from the pod name in the Deployment
        missing = [
            prefix + f.upper()
            for f in cls.model_fields
            if prefix + f.upper() not in data
            and prefix + f.upper() not in secret
            and prefix + f.upper() not in from_pod
        ]
        assert missing == [], f"{name} lacks {missing}"


# ---------------------------------------------------------------------------- the feeder


def _feeder_settings() -> set[str]:
    from md_feeder.config import Settings

    own = set(Settings.model_fields) - set(ServiceSettings.model_fields)
    return {f"MD_{name.upper()}" for name in own}


def test_compose_with_feeder_reads_redis_and_follows_s4s_venue() -> None:
    svc = _compose()["services"]["md-feeder"]
    env = _env_dict(svc["environment"])
    assert env["MD_REDIS_ADDRESSES"] == "redis:6379"
    assert env["MD_SOURCE"] == "${S4_EXCHANGE:-sim}" and env["MD_TESTNET"] == "${S4_TESTNET:-true}"
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "arangodb" not in svc["depends_on"], "the feeder keeps no documents"


def test_k8s_feeder_configmap_with_every_md_setting_and_no_secret() -> None:
    data = _by_kind("ConfigMap")["md-feeder-config"]["data"]
    wanted = _feeder_settings() | {"MD_HOST", "MD_PORT", "MD_LOG_LEVEL", "MD_REDIS_ADDRESSES"}
    assert wanted - set(data) == set()
    assert all(key.startswith("MD_") for key in data)
    assert "MD_REDIS_PASSWORD" not in data
    s4 = _by_kind("ConfigMap")["s4-router-config"]["data"]
    assert data["MD_REDIS_ADDRESSES"] == s4["S4_REDIS_ADDRESSES"]
    assert (data["MD_SOURCE"], data["MD_TESTNET"]) == (s4["S4_EXCHANGE"], s4["S4_TESTNET"])


def test_k8s_feeder_deployment_with_probes_non_root_read_only_and_config_refs() -> None:
    dep = _by_kind("Deployment")["md-feeder"]
    assert dep["spec"]["replicas"] == 1  # one poller per venue: see the manifest's header
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "md_feeder"]
    for probe, path in PROBE_PATHS.items():
        assert container[probe]["httpGet"]["path"] == path
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {"containerPort": 8080, "name": "http"} in container["ports"]
    csc = container["securityContext"]
    assert csc["readOnlyRootFilesystem"] is True and csc["capabilities"]["drop"] == ["ALL"]
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == ["md-feeder-config"]
    env = {v["name"]: v for v in container["env"]}
    ref = env["MD_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] in _by_kind("Secret") and ref["optional"] is True
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"


# ---------------------------------------------------------------------------- documents vs code
# The README's configuration reference and the runbooks say only what the code does: every
# setting with its real default, every name they mention defined in the code or the rules.

README = ROOT / "README.md"
# Settings whose default is computed at start and documented as such.
COMPUTED_DEFAULTS = {"S4_CONSUMER_NAME": "hostname-pid"}
# Base settings (svckit.settings.ServiceSettings) the feeder does not read: no store, no API.
FEEDER_UNUSED = {
    "MD_DB_ARANGO_URI",
    "MD_DB_ARANGO_USER",
    "MD_DB_ARANGO_PASS",
    "MD_DB_ARANGO_NAME",
    "MD_DATA_DIR",
    "MD_FIXTURES_DIR",
    "MD_API_TOKEN",
    "MD_AUTH_DISABLED",
}
_SEP = re.compile(r" / |, (?=`)")


def _settings_defaults() -> dict[str, Any]:
    """S3_* / S4_* / MD_* variable -> its default (None when there is none)."""
    from pydantic_core import PydanticUndefined

    from md_feeder.config import Settings as MDSettings
    from s3_strategy.config import Settings as S3Settings
    from s4_router.config import Settings as S4Settings

    out: dict[str, Any] = {}
    for cls, prefix in ((S3Settings, "S3_"), (S4Settings, "S4_"), (MDSettings, "MD_")):
        for name, field in cls.model_fields.items():
            if field.default_factory is not None:
                default = field.default_factory()  # type: ignore[call-arg]
            else:
                default = None if field.default is PydanticUndefined else field.default
            out[prefix + name.upper()] = default
    return out


def _readme_section(start: str, end: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(start) : text.index(end)]


def _expand(names: list[str], known: set[str]) -> list[str]:
    """`S3_DB_ARANGO_USER` / `_PASS` / `_NAME`: a name starting with `_` replaces the tail of
    the row's first name (the longest prefix that makes a declared variable)."""
    out: list[str] = []
    for name in names:
        if name.startswith("_") and out:
            parts = out[0].split("_")
            cands = ["_".join(parts[:i]) + name for i in range(len(parts) - 1, 0, -1)]
            name = next((c for c in cands if c in known), cands[0])
        out.append(name)
    return out


def readme_config_rows() -> list[tuple[str, str]]:
    """(variable, its default cell part) for every row of the configuration reference."""
    known = set(_settings_defaults())
    section = _readme_section("## Configuration reference", "## Hot-reloaded configuration")
    rows: list[tuple[str, str]] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = _expand(re.findall(r"`([A-Z0-9_]+)`", cells[0]), known)
        defaults = _SEP.split(cells[1]) if len(names) > 1 else [cells[1]]
        if len(defaults) == 1:
            defaults = defaults * len(names)  # one value for all: "unset", or empty
        assert len(defaults) == len(names), f"README: defaults do not pair with {names}"
        rows.extend(zip(names, defaults, strict=True))
    return rows


def _same_default(doc: str, real: Any) -> bool:
    from datetime import timedelta
    from decimal import Decimal, InvalidOperation

    from pydantic import SecretStr

    from svckit.settings import parse_duration

    if isinstance(real, SecretStr):
        real = real.get_secret_value()
    if isinstance(real, bool):
        return doc == str(real).lower()
    if isinstance(real, timedelta):
        return parse_duration(doc) == real
    if isinstance(real, int | float | Decimal):
        try:
            return Decimal(doc) == Decimal(str(real))
        except InvalidOperation:
            return False
    if isinstance(real, list):
        return doc == ",".join(real)
    return doc == str(real)


def test_readme_configuration_reference_lists_only_declared_settings() -> None:
    known = set(_settings_defaults())
    unknown = sorted({name for name, _ in readme_config_rows() if name not in known})
    assert unknown == [], f"README lists settings the code does not declare: {unknown}"


def test_readme_configuration_reference_lists_every_setting() -> None:
    section = _readme_section("## Configuration reference", "## Hot-reloaded configuration")
    listed = {name for name, _ in readme_config_rows()}
    mentioned = set(re.findall(r"`((?:S3|S4|MD)_[A-Z0-9_]+)`", section))
    missing = sorted(
        name
        for name in _settings_defaults()
        if name not in listed
        and not (name.startswith("MD_") and (name in mentioned or name in FEEDER_UNUSED))
    )
    assert missing == [], f"README's configuration reference lacks {missing}"


def test_readme_configuration_reference_states_the_real_defaults() -> None:
    defaults = _settings_defaults()
    wrong = []
    for name, cell in readme_config_rows():
        real = defaults[name]
        text = cell.strip()
        if not text:
            continue  # no claim ("as for S3", a secret)
        literal = re.match(r"`([^`]*)`", text)
        if name in COMPUTED_DEFAULTS:
            ok = literal is not None and literal.group(1) == COMPUTED_DEFAULTS[name]
        elif literal is not None:
            ok = _same_default(literal.group(1), real)
        elif text.startswith("*(") or text == "unset":
            # "*(empty ⇒ SQLite)*", "*(required)*", "unset": the code has no value either.
            ok = real in (None, [], "") or _same_default("", real)
        else:
            ok = False
        if not ok:
            wrong.append(f"{name}: README {text!r}, code {real!r}")
    assert wrong == []


def _runbook_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(RUNBOOKS.glob("*.md")))


def declared_metrics() -> set[str]:
    """Every metric family the services declare (prometheus_client constructors, literal name)."""
    import ast

    names: set[str] = set()
    for path in sorted((ROOT / "services").glob("*/src/*/metrics.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                # the prometheus_client classes, or S4's builders bound to its registry
                and str(getattr(node.func, "id", "")).lower() in {"counter", "gauge", "histogram"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


def test_runbooks_with_alert_names_name_rules_and_index_every_rule() -> None:
    rules = {rule["alert"] for rule in _alert_rules()}
    named = set(re.findall(r"\b(?:Router|Strategy|MarketData|Chimera)[A-Z]\w+", _runbook_text()))
    assert named - rules == set(), "runbooks name alerts that deploy/prometheus/alerts.yml lacks"
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in index.splitlines() if line.startswith("| "))
    missing = sorted(r for r in rules if not re.search(rf"\b{r}\b", table))
    assert missing == [], f"runbooks/README.md's alert table lacks {missing}"


def test_runbooks_with_settings_name_declared_variables() -> None:
    known = set(_settings_defaults())
    unknown = set()
    for name, star in re.findall(r"\b((?:S3|S4|MD)_[A-Z0-9_]*[A-Z0-9_])(\*?)", _runbook_text()):
        ok = any(k.startswith(name) for k in known) if star else name in known
        if not ok:
            unknown.add(name + star)
    assert unknown == set(), f"runbooks name settings the code does not declare: {unknown}"


def test_runbooks_with_metric_names_name_declared_metrics() -> None:
    metrics = declared_metrics()
    assert {"router_stream_lag", "s3_publish_failures_total"} <= metrics  # the scan works
    series = metrics | {m + s for m in metrics for s in ("_bucket", "_sum", "_count")}
    modules = {"s3_strategy", "s4_router", "md_feeder"}
    unknown = set()
    metric = re.compile(r"(?<![\w/.-])((?:router|s3|md)_[a-z0-9_]+)(?![\w./-])")
    for name in metric.findall(_runbook_text()):
        if name in modules:
            continue
        ok = any(s.startswith(name) for s in series) if name.endswith("_") else name in series
        if not ok:
            unknown.add(name)
    assert unknown == set(), f"runbooks name metrics no service declares: {unknown}"


def test_runbooks_with_alert_kinds_cover_every_kind_the_services_raise() -> None:
    from tests.unit.test_alert_kinds import INFO_ONLY, raised_kinds

    text = _runbook_text()
    prefixes = re.findall(r"`([A-Z][A-Z0-9_]*_)\*`", text)
    missing = sorted(
        kind
        for service in ("s4-router", "s3-strategy")
        for kind, severity in raised_kinds(service).items()
        if severity != INFO_ONLY
        and not re.search(rf"\b{kind}\b", text)
        and not any(kind.startswith(p) for p in prefixes)
    )
    assert missing == [], f"alert kinds no runbook explains: {missing}"


def test_runbooks_with_setting_values_in_parentheses_state_the_defaults() -> None:
    """`S4_CB_MIN_CALLS` (10), `S4_CB_OPEN_MS` (5 s), (up to `S4_CB_MAX_OPEN_MS`, 60 s): the
    value written beside a setting is its default, in the unit written."""
    from datetime import timedelta
    from decimal import Decimal

    scale = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
    defaults = _settings_defaults()
    found, wrong = 0, []
    pattern = (
        r"`((?:S3|S4|MD)_[A-Z0-9_]+)`(?:\s\(|,\s)(?:default )?"  # `VAR` (  or  `VAR`,
        r"(\d+(?:\.\d+)?)(?: ?(ms|s|m|h)\b)?"  # 250 ms
    )
    for name, number, unit in re.findall(pattern, _runbook_text()):
        real = defaults[name]
        value = Decimal(number)
        if isinstance(real, timedelta):
            real, value = Decimal(str(real.total_seconds())), value * scale[unit or "s"]
        elif unit:  # a duration setting counts in the unit its name ends with
            own = "ms" if name.endswith("_MS") else "s"
            value = value * scale[unit] / scale[own]
        found += 1
        if value != Decimal(str(real)):
            wrong.append(f"{name}: runbook {number} {unit}, code {real}")
    assert found >= 10, "the pattern finds the runbooks' values"
    assert wrong == []


def test_configmaps_and_compose_with_settings_name_only_declared_variables() -> None:
    """A stale or misspelt key would be ignored silently (extra="ignore"): none may exist."""
    known = set(_settings_defaults())
    named: set[str] = set()
    for cm in _by_kind("ConfigMap").values():
        named |= set(cm["data"]) - {"route.json"}
    for dep in _by_kind("Deployment").values():
        for container in dep["spec"]["template"]["spec"]["containers"]:
            named |= {v["name"] for v in container.get("env", [])}
    for svc in _compose()["services"].values():
        named |= set(_env_dict(svc.get("environment")))
    ours = {n for n in named if re.match(r"(S3|S4|MD)_", n)}
    assert len(ours) > 50, "the scan found the variables"
    assert ours - known == set()


@pytest.mark.parametrize(
    "doc", ["README.md", "docs/venue.md", "services/s3_strategy/README.md", "fixtures/README.md"]
)
def test_docs_with_settings_name_declared_variables(doc: str) -> None:
    shell_vars = {"S3_AUTH", "S4_AUTH"}  # the README walk-through's header variables
    known = set(_settings_defaults())
    text = (ROOT / doc).read_text(encoding="utf-8")
    unknown = set()
    for name, star in re.findall(r"\b((?:S3|S4|MD)_[A-Z0-9_]*[A-Z0-9_])(\*?)", text):
        ok = any(k.startswith(name) for k in known) if star else name in known
        if not ok and name not in shell_vars:
            unknown.add(name + star)
    assert unknown == set(), f"{doc} names settings the code does not declare: {unknown}"


def test_runbooks_index_with_alert_rows_states_severity_and_links_the_rules_runbook() -> None:
    rules = {rule["alert"]: rule for rule in _alert_rules()}
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    linked: dict[str, set[str]] = {}
    for line in index.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0] or cells[0] == "alert":
            continue
        names = [n for n in re.findall(r"\b[A-Z]\w+\b", cells[0]) if n in rules]
        severities = cells[1].split(" / ")
        for i, name in enumerate(names):
            real = rules[name]["labels"]["severity"]
            said = severities[i] if len(severities) == len(names) else None
            assert real == said or (said is None and real in severities), f"{name}: {cells[1]}"
            links = {
                "README.md" + t if t.startswith("#") else t
                for t in re.findall(r"\]\(([^)\s]+)\)", cells[2])
            }
            linked.setdefault(name, set()).update(links)
    for name, rule in rules.items():
        url = rule["annotations"]["runbook_url"].removeprefix("runbooks/")
        assert url in linked.get(name, set()), f"{name}: the table does not link {url}"


def test_runbooks_with_kubectl_commands_name_objects_and_keys_the_manifests_define() -> None:
    """`kubectl … deploy/<name>`, `-l <label>=<value>`, `get cm|secret <name> -o
    jsonpath='{.data.<key>}'`: what the runbooks' commands ask for exists in deploy/k8s."""
    deployments = _by_kind("Deployment")
    cms, secrets = _by_kind("ConfigMap"), _by_kind("Secret")
    optional_secret_keys = {
        (ref["name"], ref["key"])
        for dep in deployments.values()
        for c in dep["spec"]["template"]["spec"]["containers"]
        for v in c.get("env", [])
        if (ref := v.get("valueFrom", {}).get("secretKeyRef")) and ref.get("optional")
    }
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    lines = [ln for ln in _runbook_text().splitlines() if "kubectl" in ln]
    assert lines
    for line in lines:
        for name in re.findall(r"\bdeploy(?:ment)?/([a-z0-9-]+)", line):
            assert name in deployments, line
        for key, value in re.findall(r"-l ([\w./-]+)=([\w.-]+)", line):
            assert any(labels.get(key) == value for labels in pod_labels), line
        for kind, name, key in re.findall(
            r"get (cm|secret) ([a-z0-9-]+) -o jsonpath='\{\.data\.([\w\\.]+)\}'", line
        ):
            key = key.replace("\\.", ".")
            if kind == "cm":
                assert key in cms[name]["data"], line
            else:
                assert key in _secret_keys(secrets[name]) or (name, key) in optional_secret_keys


def test_runbooks_with_redis_keys_name_keys_the_code_uses() -> None:
    """`halt:entries:{symbol}`, `exec:lease:<parent>:prot`, `orders:intent:dlq`, …: the literal
    part of every Redis key or stream the runbooks name is in the services' source."""
    source = "\n".join(
        p.read_text(encoding="utf-8")
        for base in ("services", "libs")
        for p in (ROOT / base).glob("*/src/**/*.py")
    )
    key = re.compile(r"`([a-z_]+(?::(?:[a-z_]+|\{[a-z_]+\}|<[^>]+>))+)`")
    names = set(key.findall(_runbook_text()))
    assert {"orders:intent", "halt:entries:{symbol}"} <= names  # the scan works
    # Store keys built from an event's name: `{name.lower()}:{parent}` (protection_records.event).
    computed = {"oco_resolve:"}
    missing = set()
    for name in names:
        literal = re.split(r"[{<]", name)[0]
        if literal not in source and literal not in computed:
            missing.add(name)
    assert missing == set(), f"runbooks name Redis keys the code does not use: {missing}"
