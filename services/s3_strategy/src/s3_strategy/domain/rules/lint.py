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
  `v` a finite number within ±10¹⁵ (not a bool, not NaN/inf, not a 400-digit integer) inside
  the factor's declared [min, max] when it declares one (a threshold outside it is almost
  always a unit mistake: 25 for 0.25).
* `action` is `{"type": "skip_entry"}` or `{"type": "size_mult", "value": x}` with
  0 < x ≤ 10; nothing else.
* `applies.symbols` (absent ⇒ every symbol) must name known instruments; `applies.services`
  (absent ⇒ every service) is a subset of the closed set {`s3-strategy`} (a misspelled
  service would silently never run); `applies.markets` (absent ⇒ both) is a subset of
  FUT/SPOT. `status` is ENABLED or DISABLED; `priority` an int in [0, 10⁶]; `rule_id` unique,
  exactly `[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}` (no trailing newline). Unknown keys are errors.
* Size: at most 256 condition nodes and a 1000-character description per rule, 64 entries per
  `applies` list; at most 500 rules and 5 000 condition nodes per bundle. The walk stops at
  the budget, so an oversized rule is refused in microseconds instead of compiled (a 9.7 MB
  rule once took 928 MB).

Every error starts with its path (`R-023: when.allOf[1]: …`, `rules[3].rule_id: …`).

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
SERVICES: tuple[str, ...] = (SERVICE,)
MAX_CHILDREN = 64
MAX_ABS = 1e15  # thresholds and factor bounds: finite and within ±MAX_ABS
MAX_NODES_PER_RULE = 256
MAX_NODES_PER_BUNDLE = 5_000  # a max-size bundle builds in ≈ 0.6 s, +5 MB
MAX_RULES = 500
MAX_DESCRIPTION = 1000
MAX_LIST = 64
MAX_SIZE_MULT = 10.0
MAX_PRIORITY = 1_000_000

RULE_KEYS = frozenset({"rule_id", "priority", "description", "applies", "when", "action", "status"})
APPLIES_KEYS = frozenset({"symbols", "services", "markets"})
SYSTEM_FIELDS = frozenset({"_key", "_id", "_rev"})
# Used with fullmatch: `$` would accept a trailing newline.
RULE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
FEATURE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")

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
    errors: list[str] = []
    for doc in docs:
        name = doc.get("name")
        if not isinstance(name, str) or not FEATURE_RE.fullmatch(name):
            raise RuleLintError([f"factor_registry: invalid factor name {_short(name)}"])
        bounds: list[float | None] = []
        for key in ("min", "max"):
            v = doc.get(key)
            if v is not None and not _is_number(v):
                errors.append(
                    f"factor_registry: {name}: {key} must be a finite number within "
                    f"±{MAX_ABS:g}, got {_short(v)}"
                )
            bounds.append(float(v) if v is not None and _is_number(v) else None)
        out[name] = Factor(name, bounds[0], bounds[1])
    if errors:
        raise RuleLintError(errors)
    return out


def _is_number(v: object) -> bool:
    """A finite number within ±MAX_ABS (ints compared exactly: float(10**400) overflows)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -MAX_ABS <= v <= MAX_ABS
    return isinstance(v, float) and math.isfinite(v) and -MAX_ABS <= v <= MAX_ABS


def _short(v: object, limit: int = 60) -> str:
    """repr for an error message, bounded (a 9.7 MB string or a 10**5000 int stays short)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    if isinstance(v, str | list | dict | tuple) and len(v) > limit:
        return f"{type(v).__name__} of length {len(v)}"
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "…"


def _str_set(
    value: object, where: str, errors: list[str], allowed: Collection[str] | None = None
) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        errors.append(f"{where}: must be a non-empty list of strings")
        return None
    if len(value) > MAX_LIST:
        errors.append(f"{where}: more than {MAX_LIST} entries ({len(value)})")
        return None
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            shown = [_short(u, 40) for u in unknown[:5]]
            hint = f" (allowed: {sorted(allowed)})" if len(allowed) <= 8 else ""
            errors.append(f"{where}: unknown {shown if len(unknown) > 5 else unknown}{hint}")
    return frozenset(value)


def _lint_cond(
    node: object,
    factors: Mapping[str, Factor],
    where: str,
    depth: int,
    max_depth: int,
    errors: list[str],
    used: set[str],
    budget: list[int],
) -> Cond:
    budget[0] -= 1
    if budget[0] < 0:  # report once, then stop walking: the size is the error
        if budget[0] == -1:
            errors.append(f"{where}: more than {MAX_NODES_PER_RULE} condition nodes in one rule")
        return ("leaf", "", "==", 0.0)
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
            return ("leaf", "", "==", 0.0)
        parsed = tuple(
            _lint_cond(
                c, factors, f"{where}.{key}[{i}]", depth + 1, max_depth, errors, used, budget
            )
            for i, c in enumerate(children)
        )
        return ("all" if key == "allOf" else "any", parsed)
    if "not" in node:
        if len(node) != 1:
            errors.append(f"{where}: not takes no sibling keys, got {sorted(node)}")
        child = _lint_cond(
            node["not"], factors, f"{where}.not", depth + 1, max_depth, errors, used, budget
        )
        return ("not", child)
    if set(node) != {"f", "op", "v"}:
        errors.append(f"{where}: a leaf is exactly {{f, op, v}}, got {sorted(node)}")
        return ("leaf", "", "==", 0.0)
    f, op, v = node["f"], node["op"], node["v"]
    if not isinstance(f, str) or f not in factors:
        errors.append(f"{where}: unknown feature {_short(f)} (not in factor_registry)")
    if not isinstance(op, str) or op not in OPS:
        errors.append(f"{where}: unknown operator {_short(op)} (allowed: {' '.join(OPS)})")
    if isinstance(v, bool) or not isinstance(v, int | float):
        errors.append(f"{where}: v must be a number, got {_short(v)}")
        return ("leaf", f, op, 0.0)
    if not _is_number(v):
        errors.append(f"{where}: v must be finite and within ±{MAX_ABS:g}, got {_short(v)}")
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
    index: int = 0,
    bundle_budget: list[int] | None = None,
) -> Rule | None:
    if not isinstance(doc, dict):
        errors.append(f"rules[{index}]: rule must be an object, got {_short(doc)}")
        return None
    body = {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}
    rid = body.get("rule_id")
    if not isinstance(rid, str) or not RULE_ID_RE.fullmatch(rid):
        errors.append(
            f"rules[{index}].rule_id: invalid rule_id {_short(rid)} "
            "(exactly [A-Za-z0-9][A-Za-z0-9_.:-]{0,63})"
        )
        return None
    n_before = len(errors)
    extra = sorted(set(body) - RULE_KEYS)
    if extra:
        shown = [k if len(k) <= 40 else k[:40] + "…" for k in extra[:10]]
        errors.append(f"{rid}: unknown keys {shown}")
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
    elif desc is not None and len(desc) > MAX_DESCRIPTION:
        errors.append(f"{rid}: description: longer than {MAX_DESCRIPTION} characters")
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
        svcs = _str_set(applies.get("services"), f"{rid}: applies.services", errors, SERVICES)
    used: set[str] = set()
    if "when" not in body:
        errors.append(f"{rid}: when is required")
        when: Cond = ("leaf", "", "==", 0.0)
    else:
        budget = [MAX_NODES_PER_RULE]
        when = _lint_cond(body["when"], factors, f"{rid}: when", 1, max_depth, errors, used, budget)
        if bundle_budget is not None:  # nodes this rule holds, for the bundle's limit
            bundle_budget[0] -= MAX_NODES_PER_RULE - max(budget[0], 0)
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
                or not _is_number(raw)
                or not 0 < raw <= MAX_SIZE_MULT
            ):
                errors.append(
                    f"{rid}: action.value: size_mult value must be a number in "
                    f"(0, {MAX_SIZE_MULT}], got {_short(raw)}"
                )
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
    docs = list(docs)
    if len(docs) > MAX_RULES:
        raise RuleLintError([f"rules: more than {MAX_RULES} rules in one bundle ({len(docs)})"])
    errors: list[str] = []
    rules: list[Rule] = []
    seen: set[str] = set()
    bundle_budget = [MAX_NODES_PER_BUNDLE]
    for i, doc in enumerate(docs):
        rule = lint_rule(
            doc, factors=factors, symbols=symbols, max_depth=max_depth, errors=errors, index=i,
            bundle_budget=bundle_budget,
        )  # fmt: skip
        if bundle_budget[0] < 0:
            errors.append(
                f"rules: more than {MAX_NODES_PER_BUNDLE} condition nodes in one bundle "
                f"(reached at rules[{i}])"
            )
            break
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
