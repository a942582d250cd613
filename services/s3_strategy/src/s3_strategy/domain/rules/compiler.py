"""Compile linted rules once per bundle into one Python function per (symbol, market).

Why code generation rather than interpreting the tree (or chaining closures): a decision then
evaluates 20 rules in a couple of microseconds and 200 in tens, as one function whose `if`
statements are the rules in order:

    def _rules(x):
        fired = []
        if (x['spread_bps'] > 2.5):
            return 0, fired             # skip_entry: stop here
        if ((x['rv_pctile_30d'] < 0.25) and (x['rho_usdttwd_14'] < -0.3)):
            fired.append(1)             # size_mult
        return -1, fired

Safety of the generated text rests on the linter (lint.py), which is the only way in: feature
names match `^[a-z][a-z0-9_]*$` and are whitelisted, operators come from a closed set, thresholds
are finite floats emitted with `repr()`; a string from a rule document is never spliced in as
is (names are emitted through `repr()` too). The namespace has no builtins.
`reference_eval` interprets the same tree; tests check the two agree on random trees.

Evaluation semantics (documented in the S3 README):

* every feature any rule of the set references must be in the snapshot, else the decision is
  `FEATURE_MISSING` *before* any rule runs (fail closed, spec §H "factor missing ⇒ skip +
  alert"); the generated code therefore never sees a missing feature;
* rules run by ascending `priority`, then `rule_id` (10 before 50); only ENABLED rules for
  `s3-strategy` that apply to the symbol and market are compiled in;
* the first `skip_entry` that fires ends evaluation (`RULE_SKIP`);
* `size_mult` values multiply (Decimal: 1.1 × 1.1 is 1.21); the product is clamped to
  `size_mult_clamp`; both are reported (`rules_mult.before_clamp` / `after_clamp`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s3_strategy.domain.rules.lint import FEATURE_RE, MARKETS, OPS, SERVICE, Cond, Rule

Features = Mapping[str, float]
RulesFn = Callable[[Features], tuple[int, list[int]]]


def cond_source(node: Cond) -> str:
    kind = node[0]
    if kind == "leaf":
        f, op, v = node[1], node[2], node[3]
        # Re-checked here so the generator is safe even if called on an unlinted tree.
        if not isinstance(f, str) or not FEATURE_RE.fullmatch(f) or op not in OPS:
            raise ValueError(f"unsafe leaf {node!r}")
        if not isinstance(v, float) or v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"unsafe threshold {v!r}")
        return f"(x[{f!r}] {op} {v!r})"
    if kind in ("all", "any"):
        joiner = " and " if kind == "all" else " or "
        return "(" + joiner.join(cond_source(c) for c in node[1]) + ")"
    if kind == "not":
        return f"(not {cond_source(node[1])})"
    raise ValueError(f"unknown node {kind!r}")


def reference_eval(node: Cond, x: Features) -> bool:
    """Tree-walking interpreter of a condition (the specification the compiler must match)."""
    kind = node[0]
    if kind == "leaf":
        a, op, b = x[node[1]], node[2], node[3]
        return bool(
            a < b if op == "<" else a <= b if op == "<=" else a > b if op == ">"
            else a >= b if op == ">=" else a == b if op == "==" else a != b
        )  # fmt: skip
    if kind == "all":
        return all(reference_eval(c, x) for c in node[1])
    if kind == "any":
        return any(reference_eval(c, x) for c in node[1])
    return not reference_eval(node[1], x)


def compile_cond(node: Cond) -> Callable[[Features], bool]:
    fn: Callable[[Features], bool] = eval(  # linted input, see the module docstring
        compile(f"lambda x: {cond_source(node)}", "<rule>", "eval"), {"__builtins__": {}}
    )
    return fn


def _compile_set(rules: list[Rule]) -> RulesFn:
    lines = ["def _rules(x):", "    fired = []"]
    for i, r in enumerate(rules):
        lines.append(f"    if {cond_source(r.when)}:")
        lines.append(f"        return {i}, fired" if r.action == "skip_entry" else
                     f"        fired.append({i})")  # fmt: skip
    lines.append("    return -1, fired")
    return _compile_source("\n".join(lines))


@functools.lru_cache(maxsize=32)
def _compile_source(source: str) -> RulesFn:
    """Byte-compiling the set is most of a bundle build (a 200-rule set: milliseconds); a hot
    reload to a revision with the same rule set (a params change, a rollback) reuses it. The
    function is pure (no state, no builtins), so sharing it between engines is safe."""
    ns: dict[str, Any] = {"__builtins__": {}}
    exec(compile(source, "<ruleset>", "exec"), ns)  # linted input (module docstring)
    fn: RulesFn = ns["_rules"]
    return fn


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The ordered ENABLED rules for one (symbol, market), compiled, and the features they need."""

    rule_ids: tuple[str, ...]
    features: frozenset[str]
    rule_features: tuple[frozenset[str], ...]
    values: tuple[Decimal | None, ...]  # size_mult value per rule (None for skip_entry)
    entries: tuple[dict[str, Any], ...]  # the `rules_fired` element of each rule (shared)
    fn: RulesFn

    @property
    def empty(self) -> bool:
        return not self.rule_ids

    def needing(self, features: Iterable[str]) -> list[str]:
        wanted = set(features)
        return [rid for rid, fs in zip(self.rule_ids, self.rule_features, strict=True)
                if not fs.isdisjoint(wanted)]  # fmt: skip


@dataclass(slots=True)
class RulesOutcome:
    skip_rule: str | None
    fired: list[dict[str, Any]]
    mult_raw: Decimal
    mult: Decimal  # clamped


def _empty(_: Features) -> tuple[int, list[int]]:
    return -1, []


def compile_ruleset(rules: list[Rule]) -> RuleSet:
    entries: list[dict[str, Any]] = []
    values: list[Decimal | None] = []
    for r in rules:
        if r.action == "skip_entry":
            entries.append({"rule_id": r.rule_id, "action": "skip_entry"})
            values.append(None)
        else:
            entries.append({"rule_id": r.rule_id, "action": "size_mult", "value": r.value})
            values.append(Decimal(repr(r.value)))
    return RuleSet(
        rule_ids=tuple(r.rule_id for r in rules),
        features=frozenset().union(*(r.features for r in rules)),
        rule_features=tuple(r.features for r in rules),
        values=tuple(values),
        entries=tuple(entries),
        fn=_compile_set(rules) if rules else _empty,
    )


def build_rulesets(
    rules: Iterable[Rule], symbols: Iterable[str], service: str = SERVICE
) -> dict[tuple[str, str], RuleSet]:
    enabled = sorted((r for r in rules if r.enabled), key=lambda r: (r.priority, r.rule_id))
    out: dict[tuple[str, str], RuleSet] = {}
    cache: dict[tuple[str, ...], RuleSet] = {}
    for symbol in symbols:
        for market in MARKETS:
            chosen = [r for r in enabled if r.applies_to(symbol, market, service)]
            key = tuple(r.rule_id for r in chosen)
            if key not in cache:
                cache[key] = compile_ruleset(chosen)
            out[(symbol, market)] = cache[key]
    return out


_ONE = Decimal(1)


def evaluate(rs: RuleSet, x: Features, lo: Decimal, hi: Decimal) -> RulesOutcome:
    """Run the rules in order; `x` must hold every feature in `rs.features`."""
    skip, idx = rs.fn(x)
    entries, values = rs.entries, rs.values
    fired = [entries[i] for i in idx]
    mult = _ONE
    for i in idx:
        mult *= values[i]  # type: ignore[operator]  # size_mult rules only
    clamped = lo if mult < lo else hi if mult > hi else mult
    if skip >= 0:
        fired.append(entries[skip])
        return RulesOutcome(rs.rule_ids[skip], fired, mult, clamped)
    return RulesOutcome(None, fired, mult, clamped)
