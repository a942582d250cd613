"""Semantic bundle diff and lint-error paths (issue 13): pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from s3_strategy.domain.config_diff import diff_bundles, field_changes
from s3_strategy.domain.engine import ContextError
from s3_strategy.domain.rules import RuleLintError
from s3_strategy.service_layer.config_admin import lint_errors


def rule(rid: str, v: float = 1.0, **over: Any) -> dict[str, Any]:
    return {"rule_id": rid, "priority": 10, "status": "ENABLED",
            "when": {"allOf": [{"f": "spread_bps", "op": ">", "v": v}]},
            "action": {"type": "skip_entry"}, **over}  # fmt: skip


def test_diff_by_rule_id_ignores_order_and_lists_field_paths() -> None:
    old = {"params": {"ml": {"deadline_ms": 2}, "tp": 0.1}, "rules": [rule("A"), rule("B")]}
    new = {
        "rev": "r2",
        "params": {"ml": {"deadline_ms": 5}, "tp": 0.1, "extra": True},
        "rules": [rule("C"), rule("A", v=2.0, priority=20)],
    }
    d = diff_bundles(old, new, from_rev="r1")
    assert (d["from_rev"], d["to_rev"]) == ("r1", "r2")
    assert d["rules"]["added"] == ["C"] and d["rules"]["removed"] == ["B"]
    assert d["rules"]["changed"] == [{"rule_id": "A", "fields": [
        {"path": "priority", "old": 10, "new": 20},
        {"path": "when.allOf[0].v", "old": 1.0, "new": 2.0},
    ]}]  # fmt: skip
    assert d["params"] == [
        {"path": "extra", "old": None, "new": True, "added": True},
        {"path": "ml.deadline_ms", "old": 2, "new": 5},
    ]
    assert d["summary"] == {
        "rules_added": 1, "rules_removed": 1, "rules_changed": 1,
        "params_changed": ["extra", "ml.deadline_ms"], "empty": False,
    }  # fmt: skip


def test_diff_of_identical_bundles_is_empty_and_against_nothing_adds_all() -> None:
    b = {"params": {"x": 1}, "rules": [rule("A")]}
    assert diff_bundles(b, b)["summary"]["empty"] is True
    assert diff_bundles(None, b)["rules"]["added"] == ["A"]


def test_field_changes_tells_int_from_bool_and_removed_keys() -> None:
    assert field_changes({"a": 1}, {"a": True}) == [{"path": "a", "old": 1, "new": True}]
    assert field_changes({"a": 1}, {"a": 1.0}) == [{"path": "a", "old": 1, "new": 1.0}]
    assert field_changes({"a": {"b": 1}}, {}) == [
        {"path": "a.b", "old": 1, "new": None, "removed": True}
    ]


def test_lint_errors_point_into_the_uploaded_rules_by_index() -> None:
    rules = [rule("R-1"), rule("R-2")]
    cause = RuleLintError([
        "R-2: when.allOf[0]: unknown feature 'x' (not in factor_registry)",
        "R-2: size_mult value must be a number in (0, 10.0]",
        "factor_registry: something else",
    ])  # fmt: skip
    try:
        raise ContextError(str(cause)) from cause
    except ContextError as exc:
        errors = lint_errors(exc, rules)
    assert errors == [
        {"path": "rules[1].when.allOf[0]",
         "message": "R-2: unknown feature 'x' (not in factor_registry)"},
        {"path": "rules[1]", "message": "R-2: size_mult value must be a number in (0, 10.0]"},
        {"path": "rules", "message": "factor_registry: something else"},
    ]  # fmt: skip
