"""Every alert kind the services write to the `alerts` stream has a Prometheus rule.

The kinds are read from the source (calls that raise an alert with an UPPER_SNAKE literal kind,
plus the reconciler's RECONCILE_<FindingKind>), so a new kind without a rule fails here. A rule
covers a kind by a `kind` matcher on the service's alert counter (`router_alerts_total`,
`s3_alerts_total`; `router_reconcile_findings_total` for RECONCILE_*), or, for a dedicated rule on
its own metric, by its `alert_kinds` annotation. The rule's severity must be at least the code's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from s4_router.domain.reconcile import FindingKind
from s4_router.service_layer.reconciler import _CRITICAL as RECONCILE_CRITICAL

ROOT = Path(__file__).resolve().parents[2]
ALERTS_YML = ROOT / "deploy" / "prometheus" / "alerts.yml"
KIND = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
# Callables that raise an alert: publisher/sink methods, the protection machine's alert commands.
ALERT_CALLS = {"alert", "emit", "Alert", "_fail"}
# `_fail` is also the name of unrelated helpers (HTTP errors, refused intents).
ONLY_IN = {"_fail": {"oco_guardian.py"}}
# Call sites whose kind is not a literal: each forwards a kind raised (as a literal) elsewhere.
FORWARDERS = {
    ("alerts.py", "kind"),  # s3 AlertSink.emit -> Alert(kind=kind)
    ("publisher.py", "kind"),  # s4 Publisher.alert -> Alert(kind=kind)
    ("protection_records.py", "kind"),  # protective alert -> publisher.alert(kind)
    ("protection_interp.py", "c.kind"),  # a policy's Alert command -> alert(p, c.kind)
    ("oco_guardian.py", "kind"),  # _fail(kind) -> Alert(kind)
    ("reconciler.py", "f'RECONCILE_{f.kind.value}'"),  # expanded from FindingKind below
}
# Recovery notices: the firing alert resolves by itself, nothing to page or ticket.
INFO_ONLY = "info"
RANK = {"warning": 1, "critical": 2}
COUNTERS = {
    "s4-router": {"router_alerts_total": "", "router_reconcile_findings_total": "RECONCILE_"},
    "s3-strategy": {"s3_alerts_total": ""},
}
GROUP_SERVICE = {"s4-router": "s4-router", "s3-strategy": "s3-strategy"}


def _is_protective(path: Path) -> bool:
    # protection_records.alert publishes every protective alert as critical, and the policies'
    # Alert commands reach it through protection_interp.
    return path.name.startswith("protection_") or "policies" in path.parts


def _literals(expr: ast.expr) -> set[str]:
    """UPPER_SNAKE string constants, through conditional expressions (an f-string is computed)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str) and KIND.match(expr.value):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _literals(expr.body) | _literals(expr.orelse)
    return set()


def raised_kinds(service: str) -> dict[str, str]:
    """kind -> the highest severity the service raises it with (warning when not given)."""
    src = ROOT / "services" / service.replace("-", "_") / "src"
    kinds: dict[str, str] = {}
    dynamic: set[tuple[str, str]] = set()
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in ALERT_CALLS or path.name not in ONLY_IN.get(name, {path.name}):
                continue
            args = [*node.args[:2], *(k.value for k in node.keywords if k.arg == "kind")]
            literals = {k for a in args for k in _literals(a)}
            if not literals:
                kind_arg = next((k.value for k in node.keywords if k.arg == "kind"), None)
                if kind_arg is None and node.args:
                    # alert(p, kind, message) on a protection; alert(kind, message) elsewhere
                    two_first = name == "alert" and len(node.args) > 2
                    kind_arg = node.args[1] if two_first else node.args[0]
                if kind_arg is not None:
                    dynamic.add((path.name, ast.unparse(kind_arg)))
                continue
            sev = next(
                (
                    str(k.value.value)
                    for k in node.keywords
                    if k.arg == "severity" and isinstance(k.value, ast.Constant)
                ),
                "critical" if _is_protective(path) else "warning",
            )
            for kind in literals:
                old = kinds.get(kind)
                if old is None or RANK.get(sev, 0) > RANK.get(old, 0):
                    kinds[kind] = sev
    unknown = dynamic - FORWARDERS
    assert not unknown, f"alert raised with a computed kind: add its kinds here {unknown}"
    if service == "s4-router":
        for fk in FindingKind:
            kinds[f"RECONCILE_{fk.value}"] = "critical" if fk in RECONCILE_CRITICAL else "warning"
    return kinds


def _rules() -> list[tuple[str, dict[str, Any]]]:
    doc = yaml.safe_load(ALERTS_YML.read_text(encoding="utf-8"))
    return [(g["name"], r) for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _matched_kinds(expr: str, counters: dict[str, str]) -> set[str]:
    """Kinds named by `kind="A"` / `kind=~"A|B"` on the service's alert counters."""
    out: set[str] = set()
    for metric, prefix in counters.items():
        for labels in re.findall(rf"\b{metric}\{{([^}}]*)\}}", expr):
            m = re.search(r'kind=~?"([^"]*)"', labels)
            assert m, f"{metric} without a kind matcher: {expr}"
            names = m.group(1).split("|")
            assert all(KIND.match(n) for n in names), f"a kind matcher lists names only: {expr}"
            out |= {prefix + n for n in names}
    return out


def coverage(service: str) -> dict[str, list[tuple[str, str]]]:
    """kind -> [(rule, severity)] for the rules of the service's group."""
    got: dict[str, list[tuple[str, str]]] = {}
    for group, rule in _rules():
        if GROUP_SERVICE.get(group) != service:
            continue
        named = _matched_kinds(str(rule["expr"]), COUNTERS[service])
        dedicated = str(rule.get("annotations", {}).get("alert_kinds", "")).split()
        for kind in named | set(dedicated):
            got.setdefault(kind, []).append((rule["alert"], rule["labels"]["severity"]))
    return got


@pytest.mark.parametrize("service", sorted(COUNTERS))
def test_every_alert_kind_the_service_raises_has_exactly_one_rule(service: str) -> None:
    kinds = raised_kinds(service)
    assert len(kinds) > 5, kinds  # the scan found the call sites
    rules = coverage(service)
    missing = sorted(k for k, sev in kinds.items() if sev != INFO_ONLY and k not in rules)
    assert missing == [], f"{service}: alert kinds without a rule in {ALERTS_YML.name}"
    twice = {k: r for k, r in rules.items() if len(r) > 1}
    assert twice == {}, "one rule per kind: two would page twice for one event"


@pytest.mark.parametrize("service", sorted(COUNTERS))
def test_rules_with_alert_kinds_name_only_raised_kinds_at_the_codes_severity(
    service: str,
) -> None:
    kinds = raised_kinds(service)
    for kind, rules in coverage(service).items():
        assert kind in kinds, f"{kind}: no such alert kind in {service} (renamed or removed?)"
        assert kinds[kind] != INFO_ONLY, f"{kind} is a recovery notice: no rule"
        for name, severity in rules:
            assert RANK[severity] >= RANK[kinds[kind]], f"{name}: {kind} is {kinds[kind]}"


def test_scan_with_known_kinds_finds_literal_computed_and_reconciler_kinds() -> None:
    s4 = raised_kinds("s4-router")
    assert s4["OVERFILL"] == "critical"  # severity= keyword
    assert s4["SUBMIT_UNRESOLVED"] == "warning"  # no severity given
    assert s4["OCO_LEG_LOST"] == "critical"  # a policy's alert command, published critical
    assert s4["RECONCILE_POSITION_MISMATCH"] == "critical"
    assert s4["CIRCUIT_BREAKER_CLOSED"] == INFO_ONLY
    s3 = raised_kinds("s3-strategy")
    assert {"PUBLISH_FAILED", "PUBLISH_DEGRADED"} <= set(s3)  # both branches of a conditional
