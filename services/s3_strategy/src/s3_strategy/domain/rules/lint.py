"""L1 rule DSL: the grammar and its linter (spec §G).

A rule::

    {"rule_id": "R-023", "priority": 50, "description": "optional",
     "applies": {"symbols": ["BTCUSDT"], "services": ["s3-strategy"], "markets": ["FUT"]},
     "when": {"allOf": [{"f": "rv_pctile_30d", "op": "<", "v": 0.25}, ...]},
     "action": {"type": "size_mult", "value": 1.2}, "status": "ENABLED"}

* `when` is a tree of `{"allOf": [c, ...]}`, `{"anyOf": [c, ...]}`, `{"not": c}` and leaves
  `{"f": feature, "op": op, "v": number}`; depth ≤ `rules.max_depth` (a leaf alone is depth 1),
  at most 64 children per node.
* `f` must be a feature of `factor_registry` (the whitelist); `op` one of `< <= > >= == !=`;
  `v` a finite number (not a bool, not NaN/inf) inside the factor's declared [min, max] when it
  declares one (a threshold outside it is almost always a unit mistake: 25 for 0.25).
* `action` is `{"type": "skip_entry"}` or `{"type": "size_mult", "value": x}` with
  0 < x ≤ 10; nothing else.
* `applies.symbols` (absent ⇒ every symbol) must name known instruments; `applies.services`
  (absent ⇒ every service) selects rules for `s3-strategy`; `applies.markets` (absent ⇒ both)
  is a subset of FUT/SPOT. `status` is ENABLED or DISABLED; `priority` an int in [0, 10⁶];
  `rule_id` unique, `[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}`. Unknown keys are errors.

The linter reports every problem of every rule at once (`RuleLintError.errors`), so a bad bundle
is fixed in one round trip; nothing half-valid is ever compiled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

OPS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=")
ACTIONS: tuple[str, ...] = ("size_mult", "skip_entry")
STATUSES: tuple[str, ...] = ("ENABLED", "DISABLED")
MARKETS: tuple[str, ...] = ("FUT", "SPOT")
SERVICE = "s3-strategy"
MAX_CHILDREN = 64
MAX_SIZE_MULT = 10.0
MAX_PRIORITY = 1_000_000

RULE_KEYS = frozenset({"rule_id", "priority", "description", "applies", "when", "action", "status"})
APPLIES_KEYS = frozenset({"symbols", "services", "markets"})
SYSTEM_FIELDS = frozenset({"_key", "_id", "_rev"})
RULE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
FEATURE_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# Parsed condition: ("leaf", f, op, v) | ("all", children) | ("any", children) | ("not", child)
Cond: TypeAlias = tuple[Any, ...]


class RuleLintError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = "; ".join(errors[:20]) + (
            f"; … {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        super().__init__(f"{len(errors)} rule error(s): {shown}")


@dataclass(frozen=True, slots=True)
class Factor:
    name: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    priority: int
    status: str
    symbols: frozenset[str] | None
    markets: frozenset[str] | None
    services: frozenset[str] | None
    when: Cond
    action: str
    value: float | None
    features: frozenset[str]

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"

    def applies_to(self, symbol: str, market: str, service: str = SERVICE) -> bool:
        return (
            (self.symbols is None or symbol in self.symbols)
            and (self.markets is None or market in self.markets)
            and (self.services is None or service in self.services)
        )


def factors_from_docs(docs: Iterable[Mapping[str, Any]]) -> dict[str, Factor]:
    """`factor_registry` documents → whitelist (name → declared range)."""
    out: dict[str, Factor] = {}
    for doc in docs:
        name = doc.get("name")
        if not isinstance(name, str) or not FEATURE_RE.match(name):
            raise RuleLintError([f"factor_registry: invalid factor name {name!r}"])
        lo, hi = doc.get("min"), doc.get("max")
        out[name] = Factor(
            name,
            float(lo) if isinstance(lo, int | float) and _is_number(lo) else None,
            float(hi) if isinstance(hi, int | float) and _is_number(hi) else None,
        )
    return out


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _str_set(
    value: object, where: str, errors: list[str], allowed: Collection[str] | None = None
) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        errors.append(f"{where}: must be a non-empty list of strings")
        return None
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            errors.append(f"{where}: unknown {unknown}")
    return frozenset(value)


def _lint_cond(
    node: object,
    factors: Mapping[str, Factor],
    where: str,
    depth: int,
    max_depth: int,
    errors: list[str],
    used: set[str],
) -> Cond:
    if depth > max_depth:
        errors.append(f"{where}: condition deeper than max_depth {max_depth}")
        return ("leaf", "", "==", 0.0)
    if not isinstance(node, dict):
        errors.append(f"{where}: condition must be an object, got {node!r}")
        return ("leaf", "", "==", 0.0)
    if "allOf" in node or "anyOf" in node:
        key = "allOf" if "allOf" in node else "anyOf"
        children = node[key]
        if len(node) != 1:
            errors.append(f"{where}: {key} takes no sibling keys, got {sorted(node)}")
        if not isinstance(children, list) or not children:
            errors.append(f"{where}: {key} needs a non-empty list")
            return ("leaf", "", "==", 0.0)
        if len(children) > MAX_CHILDREN:
            errors.append(f"{where}: {key} has more than {MAX_CHILDREN} children")
        parsed = tuple(
            _lint_cond(c, factors, f"{where}.{key}[{i}]", depth + 1, max_depth, errors, used)
            for i, c in enumerate(children)
        )
        return ("all" if key == "allOf" else "any", parsed)
    if "not" in node:
        if len(node) != 1:
            errors.append(f"{where}: not takes no sibling keys, got {sorted(node)}")
        child = _lint_cond(node["not"], factors, f"{where}.not", depth + 1, max_depth, errors, used)
        return ("not", child)
    if set(node) != {"f", "op", "v"}:
        errors.append(f"{where}: a leaf is exactly {{f, op, v}}, got {sorted(node)}")
        return ("leaf", "", "==", 0.0)
    f, op, v = node["f"], node["op"], node["v"]
    if not isinstance(f, str) or f not in factors:
        errors.append(f"{where}: unknown feature {f!r} (not in factor_registry)")
    if op not in OPS:
        errors.append(f"{where}: unknown operator {op!r} (allowed: {' '.join(OPS)})")
    if isinstance(v, bool) or not isinstance(v, int | float):
        errors.append(f"{where}: v must be a number, got {v!r}")
        return ("leaf", f, op, 0.0)
    if not math.isfinite(v):
        errors.append(f"{where}: v must be finite, got {v!r}")
        return ("leaf", f, op, 0.0)
    factor = factors.get(f) if isinstance(f, str) else None
    if factor is not None:
        used.add(factor.name)
        if (factor.min is not None and v < factor.min) or (
            factor.max is not None and v > factor.max
        ):
            errors.append(
                f"{where}: threshold {v} outside {f}'s range [{factor.min}, {factor.max}]"
            )
    return ("leaf", f, op, float(v))


def lint_rule(
    doc: object,
    *,
    factors: Mapping[str, Factor],
    symbols: Collection[str],
    max_depth: int,
    errors: list[str],
) -> Rule | None:
    if not isinstance(doc, dict):
        errors.append(f"rule must be an object, got {doc!r}")
        return None
    body = {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}
    rid = body.get("rule_id")
    if not isinstance(rid, str) or not RULE_ID_RE.match(rid):
        errors.append(f"invalid rule_id {rid!r}")
        return None
    n_before = len(errors)
    extra = sorted(set(body) - RULE_KEYS)
    if extra:
        errors.append(f"{rid}: unknown keys {extra}")
    prio = body.get("priority")
    if isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= MAX_PRIORITY:
        errors.append(f"{rid}: priority must be an int in [0, {MAX_PRIORITY}], got {prio!r}")
        prio = 0
    status = body.get("status")
    if status not in STATUSES:
        errors.append(f"{rid}: status must be one of {list(STATUSES)}, got {status!r}")
    desc = body.get("description")
    if desc is not None and not isinstance(desc, str):
        errors.append(f"{rid}: description must be a string")
    applies = body.get("applies", {})
    syms = mkts = svcs = None
    if not isinstance(applies, dict):
        errors.append(f"{rid}: applies must be an object")
    else:
        bad = sorted(set(applies) - APPLIES_KEYS)
        if bad:
            errors.append(f"{rid}: applies has unknown keys {bad}")
        syms = _str_set(applies.get("symbols"), f"{rid}: applies.symbols", errors, symbols)
        mkts = _str_set(applies.get("markets"), f"{rid}: applies.markets", errors, MARKETS)
        svcs = _str_set(applies.get("services"), f"{rid}: applies.services", errors)
    used: set[str] = set()
    if "when" not in body:
        errors.append(f"{rid}: when is required")
        when: Cond = ("leaf", "", "==", 0.0)
    else:
        when = _lint_cond(body["when"], factors, f"{rid}: when", 1, max_depth, errors, used)
    action = body.get("action")
    kind: str = ""
    value: float | None = None
    if not isinstance(action, dict) or action.get("type") not in ACTIONS:
        got = action.get("type") if isinstance(action, dict) else action
        errors.append(f"{rid}: action.type must be one of {list(ACTIONS)}, got {got!r}")
    else:
        kind = str(action["type"])
        if kind == "size_mult":
            raw = action.get("value")
            if set(action) != {"type", "value"}:
                errors.append(f"{rid}: size_mult action is exactly {{type, value}}")
            if (
                isinstance(raw, bool)
                or not isinstance(raw, int | float)
                or not math.isfinite(raw)
                or not 0 < raw <= MAX_SIZE_MULT
            ):
                errors.append(f"{rid}: size_mult value must be a number in (0, {MAX_SIZE_MULT}]")
            else:
                value = float(raw)
        elif set(action) != {"type"}:
            errors.append(f"{rid}: skip_entry action takes no other keys")
    if len(errors) > n_before:
        return None
    return Rule(
        rule_id=rid,
        priority=int(prio),
        status=str(status),
        symbols=syms,
        markets=mkts,
        services=svcs,
        when=when,
        action=kind,
        value=value,
        features=frozenset(used),
    )


def lint_rules(
    docs: Iterable[object],
    *,
    factors: Mapping[str, Factor],
    symbols: Collection[str],
    max_depth: int = 6,
) -> tuple[Rule, ...]:
    """Validate every rule; raise RuleLintError listing all problems, else the parsed rules."""
    errors: list[str] = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for doc in docs:
        rule = lint_rule(doc, factors=factors, symbols=symbols, max_depth=max_depth, errors=errors)
        rid = doc.get("rule_id") if isinstance(doc, dict) else None
        if isinstance(rid, str):
            if rid in seen:
                errors.append(f"{rid}: duplicate rule_id")
            seen.add(rid)
        if rule is not None:
            rules.append(rule)
    if errors:
        raise RuleLintError(errors)
    return tuple(rules)
