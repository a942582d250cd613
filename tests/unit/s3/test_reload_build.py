"""Cost properties of a reload's build (issue 13: lint + compile + diff of 200 rules ≤ 10 ms)
that can be checked exactly, without timing anything."""

from __future__ import annotations

import builtins
import contextlib
import copy
import gc
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from s3_strategy.adapters.configstore import assemble, build_engine, limits_of
from s3_strategy.config import Settings
from s3_strategy.domain import config_diff
from s3_strategy.domain.config_diff import diff_bundles
from s3_strategy.domain.engine import Engine
from s3_strategy.domain.rules import factors_from_docs, lint_rules
from s3_strategy.domain.rules.lint import _view
from tests.unit.s3.helpers import engine, fixture, params, rule
from tradekit.rules import RuleErrors, StrategyRule, check_rule_docs, check_rules


def rules_200() -> list[dict[str, Any]]:
    out = []
    for i in range(200):
        when = {
            "allOf": [
                {"f": "spread_bps", "op": "<", "v": 1.0 + i / 1000},
                {
                    "anyOf": [
                        {"f": "rv_1h", "op": ">=", "v": 0.0},
                        {"f": "ma_cross", "op": "<", "v": 0.5},
                    ]
                },
            ]
        }
        out.append(rule(f"R-{i:04d}", when, priority=i))
    return out


def content(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return assemble(
        bundle_id="test",
        rev="rev-test",
        params=params(),
        rules=rules,
        factors=fixture("factor_registry.json"),
        instruments=fixture("instrument_registry.json"),
        route_tables={"default": {"rev": "r", "bands": fixture("route_table.json")}},
        limits=limits_of(Settings()),
    )


@contextlib.contextmanager
def collections() -> Iterator[list[int]]:
    """The generations of the GC passes that start while an Engine is being built (the pass
    the allocations trigger right after the build, once the collector is back on, is not)."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase != "start":
            return
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            if frame.f_code is Engine.__init__.__code__:
                seen.append(info["generation"])
                return
            frame = frame.f_back

    gc.callbacks.append(count)
    try:
        yield seen
    finally:
        gc.callbacks.remove(count)


def test_building_a_200_rule_engine_runs_no_gc_pass_and_leaves_the_gc_on() -> None:
    # Everything the build allocates survives (it is the engine): a collection during it is
    # pure cost. The build pauses the collector and turns it back on afterwards.
    doc = content(rules_200())
    assert gc.isenabled()
    with collections() as seen:
        built = build_engine(doc)
    assert seen == []
    assert gc.isenabled()
    assert len(built.rule_ids) == 200


def test_a_build_inside_a_gc_disabled_section_leaves_it_disabled() -> None:
    gc.disable()
    try:
        engine(rules=rules_200()[:5])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_diff_of_equal_copies_never_reprs_whole_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    # Telling 1 from 1.0 and true in equal documents goes through their JSON serialisation, not
    # repr (ten times slower: it dominated the diff of an upload whose rules did not change).
    old = {"params": {"x": 1}, "rules": rules_200()}
    new = copy.deepcopy(old)
    calls = [0]
    real = builtins.repr

    def counting(value: object) -> str:
        calls[0] += 1
        return real(value)

    monkeypatch.setattr(config_diff, "repr", counting, raising=False)
    d = diff_bundles(old, new)
    assert d["summary"]["empty"] is True
    assert calls[0] == 0
    new["rules"][7]["when"]["allOf"][0]["v"] = 1  # int where the old one was a float
    changed = diff_bundles(old, {"params": {"x": 1}, "rules": new["rules"]})["rules"]["changed"]
    assert changed == [
        {"rule_id": "R-0007", "fields": [{"path": "when.allOf[0].v", "old": 1.007, "new": 1}]}
    ]


def test_a_valid_bundle_is_linted_as_plain_documents_with_the_models_view() -> None:
    # The fast yes: one pydantic-core call into plain dicts (RuleDoc), not ~1,600 model
    # instances; the view the compiler gets is the one the models give.
    rules = rules_200()
    factors = factors_from_docs(fixture("factor_registry.json"))
    symbols = {"BTCUSDT", "ETHUSDT"}
    plain = check_rule_docs(rules, factors=factors, symbols=symbols)
    assert all(type(r) is dict for r in plain)
    typed = check_rules(rules, factors=factors, symbols=symbols)
    assert all(isinstance(r, StrategyRule) for r in typed)
    views = lint_rules(rules, factors=factors, symbols=symbols)
    assert list(views) == [_view(r) for r in typed]
    # A refused bundle still gets every message from the models.
    bad = [*rules[:2], {**rules[2], "when": {"f": "spread_bps", "op": "<", "v": "x"}}]
    with pytest.raises(RuleErrors) as info:
        check_rule_docs(bad, factors=factors, symbols=symbols)
    assert info.value.errors == ["R-0002: when: v must be a number, got 'x'"]


def test_a_condition_is_walked_once_after_validation_by_the_compiler() -> None:
    # The view keeps each rule's validated condition document; only the compiler walks it
    # (collecting the features it reads on the way): no second tree per rule on a reload.
    from s3_strategy.domain.rules import lint

    doc = content(rules_200())
    calls = [0]

    def count(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and code.co_filename == lint.__file__ and code.co_name[0] == "_":
            calls[0] += 1  # the module's helpers (the views and any tree walker)

    sys.setprofile(count)
    try:
        built = build_engine(doc)
    finally:
        sys.setprofile(None)
    assert len(built.rule_ids) == 200
    assert calls[0] == 200  # one view per rule, nothing walked


def test_compiled_conditions_leave_the_collector_about_one_object_per_node() -> None:
    # Every object the engine keeps is scanned by each later GC pass for as long as the bundle
    # is active. A compiled node is one function whose defaults bind what it reads; closure
    # cells (one per variable, plus the closure tuple) tripled that.
    from s3_strategy.domain.rules import compile_cond

    conds = [r["when"] for r in rules_200()]
    nodes = 5 * len(conds)  # allOf[leaf, anyOf[leaf, leaf]]
    gc.collect()
    before = len(gc.get_objects())
    compiled = [compile_cond(c) for c in conds]
    gc.collect()  # tuples of strings and floats stop being tracked here
    kept = len(gc.get_objects()) - before
    assert len(compiled) == 200
    assert kept <= 1.5 * nodes
