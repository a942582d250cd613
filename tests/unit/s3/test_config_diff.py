"""Semantic bundle diff and lint-error paths (issue 13): pure functions, no I/O."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from s3_strategy.domain.config_diff import diff_bundles, field_changes
from s3_strategy.domain.engine import ContextError
from s3_strategy.domain.rules import RuleLintError
from s3_strategy.service_layer.config_admin import lint_errors


def rule(rid: str, v: float = 1.0, **over: Any) -> dict[str, Any]:
    return {
        "rule_id": rid,
        "priority": 10,
        "status": "ENABLED",
        "when": {"allOf": [{"f": "spread_bps", "op": ">", "v": v}]},
        "action": {"type": "skip_entry"},
        **over,
    }


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
    assert d["rules"]["changed"] == [
        {
            "rule_id": "A",
            "fields": [
                {"path": "priority", "old": 10, "new": 20},
                {"path": "when.allOf[0].v", "old": 1.0, "new": 2.0},
            ],
        }
    ]
    assert d["params"] == [
        {"path": "extra", "old": None, "new": True, "added": True},
        {"path": "ml.deadline_ms", "old": 2, "new": 5},
    ]
    assert d["summary"] == {
        "rules_added": 1,
        "rules_removed": 1,
        "rules_changed": 1,
        "params_changed": ["extra", "ml.deadline_ms"],
        "empty": False,
    }


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
    cause = RuleLintError(
        [
            "R-2: when.allOf[0]: unknown feature 'x' (not in factor_registry)",
            "R-2: size_mult value must be a number in (0, 10.0]",
            "factor_registry: something else",
        ]
    )
    try:
        raise ContextError(str(cause)) from cause
    except ContextError as exc:
        errors = lint_errors(exc, rules)
    assert errors == [
        {
            "path": "rules[1].when.allOf[0]",
            "message": "R-2: unknown feature 'x' (not in factor_registry)",
        },
        {"path": "rules[1]", "message": "R-2: size_mult value must be a number in (0, 10.0]"},
        {"path": "rules", "message": "factor_registry: something else"},
    ]


# ---- the walk against its specification ----------------------------------------------------
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, 2.5, -0.0])
    | st.sampled_from(["a", "b"]),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y", "z"]), kids, max_size=3)
    ),
    max_leaves=12,
)


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k in value:
            _flat(value[k], f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flat(item, f"{prefix}[{i}]", out)
    elif prefix or not isinstance(value, dict | list):
        out[prefix] = value


def _spec(old: Any, new: Any) -> list[dict[str, Any]]:
    """Flatten both whole, compare path by path (types count: 1, 1.0 and true differ)."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flat(old, "", a)
    _flat(new, "", b)
    out = []
    for path in a.keys() | b.keys():
        if path not in a:
            out.append({"path": path, "old": None, "new": b[path], "added": True})
        elif path not in b:
            out.append({"path": path, "old": a[path], "new": None, "removed": True})
        elif a[path] != b[path] or type(a[path]) is not type(b[path]):
            out.append({"path": path, "old": a[path], "new": b[path]})
    return sorted(out, key=lambda c: str(c["path"]))


@settings(max_examples=1000, deadline=None)
@given(old=_json, new=_json)
def test_field_changes_agree_with_flattening_both_documents(old: Any, new: Any) -> None:
    assert field_changes(old, new) == _spec(old, new)


@settings(max_examples=200, deadline=None)
@given(old=_json)
def test_field_changes_of_a_document_with_itself_or_its_copy_is_empty(old: Any) -> None:
    assert field_changes(old, old) == [] and field_changes(old, json.loads(json.dumps(old))) == []
