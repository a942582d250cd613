"""The Kubernetes manifests against the real API schemas (kubernetes-validate, strict: an unknown
field is an error, as `kubectl apply --validate=strict` would make it), for the oldest and the
newest Kubernetes minor the project supports. No cluster is needed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# Oldest minor still in the providers' support windows, and the newest the package knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KUSTOMIZATION = "kustomization.yaml"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != KUSTOMIZATION)


def test_kustomization_with_resources_lists_every_manifest_but_the_secret_template() -> None:
    (kust,) = _documents(K8S_DIR / KUSTOMIZATION)
    listed = set(kust["resources"])
    assert listed == {p.name for p in _manifests()} - {"secret.template.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_manifest_with_strict_schema_validates(path: Path, version: str) -> None:
    docs = _documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_validation_with_unknown_field_or_wrong_type_is_refused() -> None:
    """The check is real: a typo'd field and a string replica count both fail."""
    (dep,) = _documents(K8S_DIR / "deployment-s4-router.yaml")
    version = VERSIONS[-1]
    typo = copy.deepcopy(dep)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, version, strict=True)
    wrong = copy.deepcopy(dep)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, version, strict=True)
