"""L1 rule DSL linter: whitelisted features and operators, types, finite thresholds inside the
factor's range, bounded nesting, unique ids, closed set of actions and statuses; every problem
of every rule is reported at once."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from s3_strategy.domain.rules import RuleLintError, compile_cond, factors_from_docs, lint_rules
from tests.unit.s3.helpers import fixture, rule

FACTORS = factors_from_docs(fixture("factor_registry.json"))
SYMBOLS = {"BTCUSDT", "ETHUSDT", "QRLUSDT"}
LEAF = {"f": "spread_bps", "op": ">", "v": 2.5}


def lint(*docs: Any, max_depth: int = 6) -> Any:
    return lint_rules(list(docs), factors=FACTORS, symbols=SYMBOLS, max_depth=max_depth)


def errors_of(*docs: Any, max_depth: int = 6) -> list[str]:
    with pytest.raises(RuleLintError) as info:
        lint(*docs, max_depth=max_depth)
    return info.value.errors


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = LEAF
    for _ in range(depth - 1):
        node = {"not": node}
    return node


def test_lint_with_fixture_rules_accepts_all_of_them() -> None:
    rules = lint(*fixture("strategy_rules.json"))
    assert {r.rule_id for r in rules} >= {"R-023", "R-001", "R-031"}
    r023 = next(r for r in rules if r.rule_id == "R-023")
    used: set[str] = set()
    compile_cond(r023.when, used)
    assert used == {"rv_pctile_30d", "rho_usdttwd_14"} and r023.value == 1.2


def test_lint_with_store_system_fields_ignores_them() -> None:
    assert lint({**rule("R-1", LEAF), "_key": "R-1", "_id": "x/R-1", "_rev": "1"})


@pytest.mark.parametrize(
    ("when", "needle"),
    [
        ({"f": "moon_phase", "op": "<", "v": 1}, "unknown feature 'moon_phase'"),
        ({"f": "spread_bps", "op": "=~", "v": 1}, "unknown operator '=~'"),
        ({"f": "spread_bps", "op": "in", "v": 1}, "unknown operator 'in'"),
        ({"f": "spread_bps", "op": "<", "v": "2"}, "v must be a number"),
        ({"f": "spread_bps", "op": "<", "v": True}, "v must be a number"),
        ({"f": "spread_bps", "op": "<", "v": None}, "v must be a number"),
        ({"f": "spread_bps", "op": "<", "v": math.nan}, "v must be finite"),
        ({"f": "spread_bps", "op": "<", "v": math.inf}, "v must be finite"),
        ({"f": "spread_bps", "op": "<", "v": -math.inf}, "v must be finite"),
        ({"f": "rv_pctile_30d", "op": "<", "v": 25}, "outside rv_pctile_30d's range"),
        ({"f": "spread_bps", "op": "<"}, "a leaf is exactly {f, op, v}"),
        ({"f": "spread_bps", "op": "<", "v": 1, "x": 2}, "a leaf is exactly {f, op, v}"),
        ({"allOf": []}, "allOf needs a non-empty list"),
        ({"anyOf": LEAF}, "anyOf needs a non-empty list"),
        ({"allOf": [LEAF], "anyOf": [LEAF]}, "takes no sibling keys"),
        ({"not": LEAF, "f": "x"}, "not takes no sibling keys"),
        ({"oneOf": [LEAF]}, "a leaf is exactly"),
        ([LEAF], "condition must be an object"),
        ({"allOf": [LEAF] * 65}, "more than 64 children"),
        ({"f": "__import__('os')", "op": "<", "v": 1}, "unknown feature"),
    ],
)
def test_lint_with_bad_condition_rejects_naming_the_problem(when: Any, needle: str) -> None:
    errs = errors_of(rule("R-1", when))
    assert any(needle in e for e in errs), errs


def test_lint_with_nesting_at_max_depth_accepts_and_deeper_rejects() -> None:
    assert lint(rule("R-1", nested(6)), max_depth=6)
    errs = errors_of(rule("R-1", nested(7)), max_depth=6)
    assert any("deeper than max_depth 6" in e for e in errs)


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        ({"type": "size_mult_x"}, "action.type must be one of"),
        ({"type": "open_long"}, "action.type must be one of"),
        ("skip_entry", "action.type must be one of"),
        ({"type": "size_mult"}, "size_mult value must be a number in (0, 10.0]"),
        ({"type": "size_mult", "value": 0}, "size_mult value"),
        ({"type": "size_mult", "value": -1.2}, "size_mult value"),
        ({"type": "size_mult", "value": 11}, "size_mult value"),
        ({"type": "size_mult", "value": math.nan}, "size_mult value"),
        ({"type": "size_mult", "value": math.inf}, "size_mult value"),
        ({"type": "size_mult", "value": "1.2"}, "size_mult value"),
        ({"type": "size_mult", "value": 1.2, "cap": 2}, "exactly {type, value}"),
        ({"type": "skip_entry", "value": 1}, "skip_entry action takes no other keys"),
    ],
)
def test_lint_with_bad_action_rejects_naming_the_problem(action: Any, needle: str) -> None:
    errs = errors_of(rule("R-1", LEAF, action))
    assert any(needle in e for e in errs), errs


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"rule_id": "bad id!"}, "invalid rule_id"),
        ({"rule_id": 7}, "invalid rule_id"),
        ({"priority": "high"}, "priority must be an int"),
        ({"priority": True}, "priority must be an int"),
        ({"priority": -1}, "priority must be an int"),
        ({"status": "enabled"}, "status must be one of"),
        ({"status": None}, "status must be one of"),
        ({"weight": 3}, "unknown keys ['weight']"),
        ({"applies": {"symbols": ["DOGEUSDT"]}}, "applies.symbols: unknown ['DOGEUSDT']"),
        ({"applies": {"markets": ["OPTIONS"]}}, "applies.markets: unknown ['OPTIONS']"),
        ({"applies": {"symbols": "BTCUSDT"}}, "must be a non-empty list of strings"),
        ({"applies": {"venues": ["x"]}}, "applies has unknown keys ['venues']"),
        ({"applies": []}, "applies must be an object"),
        ({"description": 5}, "description must be a string"),
    ],
)
def test_lint_with_bad_rule_field_rejects_naming_the_problem(
    over: dict[str, Any], needle: str
) -> None:
    errs = errors_of({**rule("R-1", LEAF), **over})
    assert any(needle in e for e in errs), errs


def test_lint_with_missing_when_rejects() -> None:
    doc = rule("R-1", LEAF)
    del doc["when"]
    assert any("when is required" in e for e in errors_of(doc))


def test_lint_with_duplicate_rule_ids_rejects() -> None:
    errs = errors_of(rule("R-1", LEAF), rule("R-1", LEAF, priority=3))
    assert errs == ["R-1: duplicate rule_id"]


def test_lint_with_several_bad_rules_reports_every_problem_at_once() -> None:
    errs = errors_of(
        rule("R-1", {"f": "nope", "op": "<", "v": 1}),
        rule("R-2", LEAF, {"type": "explode"}),
        rule("R-3", {"f": "spread_bps", "op": "<", "v": math.nan}),
    )
    assert [e.split(":")[0] for e in errs] == ["R-1", "R-2", "R-3"]


def test_lint_with_nan_from_a_json_file_rejects() -> None:
    # Python's json module accepts the NaN token; the linter is what stops it.
    doc = json.loads('{"f": "spread_bps", "op": "<", "v": NaN}')
    assert any("finite" in e for e in errors_of(rule("R-1", doc)))


def test_lint_with_rule_error_message_summarises_the_count() -> None:
    with pytest.raises(RuleLintError, match=r"^2 rule error\(s\): "):
        lint(rule("R-1", {"f": "nope", "op": "<", "v": 1}), rule("R-1", LEAF))


def test_factors_from_docs_with_invalid_name_rejects() -> None:
    with pytest.raises(RuleLintError, match="invalid factor name"):
        factors_from_docs([{"name": "x'); import os; ('", "type": "float"}])


def test_lint_with_two_million_children_refuses_without_validating_them() -> None:
    # A shared list is a small object; the schema's length check answers before any item.
    t0 = time.perf_counter()
    errs = errors_of(rule("R-1", {"anyOf": [{"allOf": [LEAF] * 2_000_000}]}))
    assert time.perf_counter() - t0 < 0.5
    assert errs == ["R-1: when.anyOf[0]: allOf has more than 64 children"]
