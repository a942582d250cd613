"""L1 rule DSL: lint a bundle's rules and give the compiler its view of them (spec §G).

The language itself — the schema, its limits and the checks against the reference data
(feature whitelist and ranges, symbols, depth and size budgets) — is `tradekit.rules`, shared
with the seed, so that S3 and the seed refuse exactly the same rules. What is S3's own here is
the compiled view: each rule's applicability as sets, its action flattened, its condition as
the validated document (`Cond`). Every error starts with its path (`R-023: when.allOf[1]: …`,
`rules[3].rule_id: …`); every problem of every rule is reported at once
(`RuleLintError.errors`), so a bad bundle is fixed in one round trip; nothing half-valid is ever
compiled.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias, cast

from tradekit.rules import (
    DEFAULT_MAX_DEPTH,
    SERVICE,
    Factor,
    RuleDoc,
    StrategyRule,
    check_rule_docs,
    factors_from_docs,
)
from tradekit.rules import RuleErrors as RuleLintError

__all__ = [
    "Cond",
    "Factor",
    "Rule",
    "RuleLintError",
    "factors_from_docs",
    "lint_rules",
]

# A rule's condition is kept as its validated JSON document — {"allOf": [c, …]},
# {"anyOf": [c, …]}, {"not": c} or a leaf {"f", "op", "v"} (v a float) — and read once, by the
# compiler (which also collects the features it reads): no second tree is built on a reload.
Cond: TypeAlias = Mapping[str, Any]


class Rule(NamedTuple):
    """One linted rule as the compiler reads it. A NamedTuple rather than a frozen dataclass:
    just as immutable, and built several times faster (a frozen dataclass sets each field
    through object.__setattr__), which a reload of 200 rules notices (issue 13)."""

    rule_id: str
    priority: int
    status: str
    symbols: frozenset[str] | None
    markets: frozenset[str] | None
    services: frozenset[str] | None
    when: Cond
    action: str
    value: float | None

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"

    def applies_to(self, symbol: str, market: str, service: str = SERVICE) -> bool:
        return (
            (self.symbols is None or symbol in self.symbols)
            and (self.markets is None or market in self.markets)
            and (self.services is None or service in self.services)
        )


def _view_doc(doc: RuleDoc) -> Rule:
    """The compiler's view of a rule validated as a plain document (the fast path)."""
    a = doc.get("applies") or {}
    symbols, markets, services = a.get("symbols"), a.get("markets"), a.get("services")
    action = doc["action"]
    return Rule(
        rule_id=doc["rule_id"],
        priority=doc["priority"],
        status=doc["status"],
        symbols=None if symbols is None else frozenset(symbols),
        markets=None if markets is None else frozenset(markets),
        services=None if services is None else frozenset(services),
        when=doc["when"],
        action=action["type"],
        value=action.get("value"),  # type: ignore[arg-type]  # size_mult only
    )


def _view(doc: StrategyRule) -> Rule:
    """The view of a rule validated as a model (the slow path): that of its JSON document."""
    return _view_doc(cast(RuleDoc, doc.model_dump(by_alias=True)))


def lint_rules(
    docs: Iterable[object],
    *,
    factors: Mapping[str, Factor],
    symbols: Collection[str],
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[Rule, ...]:
    """Validate every rule; raise RuleLintError listing all problems, else the parsed rules."""
    checked = check_rule_docs(docs, factors=factors, symbols=symbols, max_depth=max_depth)
    return tuple(_view(r) if isinstance(r, StrategyRule) else _view_doc(r) for r in checked)
