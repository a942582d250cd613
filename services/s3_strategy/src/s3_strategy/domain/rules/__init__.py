"""L1 rule DSL: `lint` (grammar, whitelist, closed sets) and `compiler` (closures, evaluation)."""

from s3_strategy.domain.rules.compiler import (
    RuleSet,
    RulesOutcome,
    build_rulesets,
    compile_cond,
    evaluate,
)
from s3_strategy.domain.rules.lint import Factor, Rule, RuleLintError, factors_from_docs, lint_rules

__all__ = [
    "Factor",
    "Rule",
    "RuleLintError",
    "RuleSet",
    "RulesOutcome",
    "build_rulesets",
    "compile_cond",
    "evaluate",
    "factors_from_docs",
    "lint_rules",
]
