"""Hypothesis properties of the two input languages the services trust least.

* The rule linter (`s3_strategy.domain.rules.lint_rules` over `tradekit.rules.check_rules`):
  on any JSON whatsoever it answers the parsed rules or `RuleLintError` — never another
  exception — and whatever it accepts, the compiler compiles and evaluates exactly as the tree
  interpreter does.
* The order intent (`tradekit.intents.OrderIntent`): a valid intent round-trips through JSON
  unchanged; non-finite numbers and oversized values are refused, naming the field; any JSON
  gets a ValidationError or an intent, nothing else.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from s3_strategy.domain.rules import (
    Rule,
    RuleLintError,
    build_rulesets,
    compile_cond,
    evaluate,
    factors_from_docs,
    lint_rules,
)
from s3_strategy.domain.rules.lint import _view, _view_doc
from tests.conftest import FIXTURES
from tests.unit.s3.helpers import reference_eval
from tradekit.intents import MAX_NUMBER, OrderIntent
from tradekit.rules import RuleErrors, check_rule_docs, check_rules

FACTORS = factors_from_docs(json.loads((FIXTURES / "factor_registry.json").read_text()))
SYMBOLS = ("BTCUSDT", "ETHUSDT")
FEATURES = sorted(FACTORS)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- JSON of any shape, biased towards the words both languages use ------------------------
WORDS = (
    "rule_id",
    "priority",
    "applies",
    "when",
    "action",
    "status",
    "description",
    "allOf",
    "anyOf",
    "not",
    "f",
    "op",
    "v",
    "type",
    "value",
    "symbols",
    "markets",
    "services",
    "size_mult",
    "skip_entry",
    "ENABLED",
    "<",
    "==",
    "BTCUSDT",
    "FUT",
    "SPOT",
    "s3-strategy",
    "intent_id",
    "market",
    "symbol",
    "side",
    "qty",
    "exec_policy",
    "sl",
    "tp",
    "price",
    "client_order_id",
    "MARKET",
    "OCO",
    "TWAP",
    "tp_price",
    "sl_price",
    "BUY",
    "SELL",
    "_key",
    "_id",
    *FEATURES,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(WORDS), st.text(max_size=6)), kids, max_size=5),
    ),
    max_leaves=25,
)

# ---- rules: valid ones, near-valid ones, and anything -----------------------------------------
leaves = st.fixed_dictionaries(
    {
        "f": st.sampled_from(FEATURES),
        "op": st.sampled_from(("<", "<=", ">", ">=", "==", "!=")),
        "v": st.sampled_from((-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0, 1e16)),
    }
)
conds = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.builds(lambda k: {"allOf": k}, st.lists(kids, min_size=1, max_size=4)),
        st.builds(lambda k: {"anyOf": k}, st.lists(kids, min_size=1, max_size=4)),
        st.builds(lambda k: {"not": k}, kids),
    ),
    max_leaves=10,
)
actions = st.one_of(
    st.just({"type": "skip_entry"}),
    st.builds(
        lambda x: {"type": "size_mult", "value": x},
        st.sampled_from((0.0, 0.1, 0.5, 1.0, 2.5, 10.0, 11.0)),
    ),
)
rule_docs = st.fixed_dictionaries(
    {
        "rule_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,8}", fullmatch=True),
        "priority": st.integers(min_value=-5, max_value=1_000_005),
        "when": conds,
        "action": actions,
        "status": st.sampled_from(("ENABLED", "DISABLED", "enabled")),
    },
    optional={
        "applies": st.fixed_dictionaries(
            {},
            optional={
                "symbols": st.lists(st.sampled_from((*SYMBOLS, "DOGEUSDT")), max_size=3),
                "markets": st.lists(st.sampled_from(("FUT", "SPOT", "OPT")), max_size=2),
                "services": st.lists(st.sampled_from(("s3-strategy", "s4-router")), max_size=2),
            },
        ),
        "description": st.text(max_size=20),
    },
)


@st.composite
def mutated_rules(draw: st.DrawFn) -> dict[str, Any]:
    """A generated rule with one of its keys (or a new one) replaced by arbitrary JSON."""
    doc = dict(draw(rule_docs))
    key = draw(st.sampled_from([*doc, "extra", "_key"]))
    doc[key] = draw(json_values)
    return doc


bundles = st.lists(st.one_of(rule_docs, mutated_rules(), json_values), min_size=0, max_size=5)
points = st.fixed_dictionaries(
    {f: st.sampled_from((-1.0, 0.0, 0.25, 0.5, 1.0, 3.0)) for f in FEATURES}
)


def _lint(docs: list[Any]) -> tuple[tuple[Rule, ...] | None, RuleLintError | None]:
    """The linter's answer: its rules, or its lint error (any other exception propagates)."""
    try:
        return lint_rules(docs, factors=FACTORS, symbols=set(SYMBOLS)), None
    except RuleLintError as exc:
        return None, exc


@PROPS
@given(docs=bundles, x=points)
def test_linter_on_any_json_answers_rules_or_lint_error_and_accepts_only_compilable_rules(
    docs: list[Any], x: dict[str, float]
) -> None:
    rules, refused = _lint(docs)
    if refused is not None:
        assert refused.errors and all(isinstance(e, str) and e for e in refused.errors)
        return
    assert rules is not None
    # Accepted: it compiles, and the compiled condition is the tree interpreter's.
    rulesets = build_rulesets(rules, SYMBOLS)
    for r in rules:
        assert compile_cond(r.when)(x) is reference_eval(r.when, x)
    for rs in rulesets.values():
        out = evaluate(rs, x, Decimal("0.5"), Decimal("1.5"))
        assert Decimal("0.5") <= out.mult <= Decimal("1.5")
        assert {f["rule_id"] for f in out.fired} <= {r.rule_id for r in rules}


def _rule_id(doc: dict[str, Any]) -> str:
    return str(doc["rule_id"])


@settings(PROPS, max_examples=100)
@given(docs=st.lists(rule_docs, min_size=1, max_size=5, unique_by=_rule_id))
def test_linter_accepts_every_rule_within_the_language(docs: list[dict[str, Any]]) -> None:
    def within(doc: dict[str, Any]) -> bool:  # the documented language, restated
        def ok_cond(c: dict[str, Any]) -> bool:
            if "f" in c:
                fac = FACTORS[c["f"]]
                lo = -math.inf if fac.min is None else fac.min
                hi = math.inf if fac.max is None else fac.max
                v = float(c["v"])
                return abs(v) <= 1e15 and lo <= v <= hi
            kids = c.get("allOf") or c.get("anyOf") or [c.get("not")]
            return all(ok_cond(k) for k in kids)

        def depth(c: dict[str, Any]) -> int:
            if "f" in c:
                return 1
            kids = c.get("allOf") or c.get("anyOf") or [c.get("not")]
            return 1 + max(depth(k) for k in kids)

        a, app = doc["action"], doc.get("applies", {})
        return (
            0 <= doc["priority"] <= 1_000_000
            and doc["status"] in ("ENABLED", "DISABLED")
            and all(len(v) >= 1 for v in app.values())  # a present list names something
            and ok_cond(doc["when"])
            and depth(doc["when"]) <= 6
            and (a["type"] == "skip_entry" or 0 < a["value"] <= 10)
            and set(app.get("symbols", ())) <= set(SYMBOLS)
            and set(app.get("markets", ())) <= {"FUT", "SPOT"}
            and set(app.get("services", ())) <= {"s3-strategy"}
        )

    expect_ok = all(within(d) for d in docs)
    rules, refused = _lint(docs)
    if refused is not None:
        assert not expect_ok, refused.errors
        return
    assert expect_ok, docs
    assert rules is not None
    assert [r.rule_id for r in rules] == [d["rule_id"] for d in docs]
    build_rulesets(rules, SYMBOLS)


@PROPS
@given(docs=st.one_of(bundles, st.lists(rule_docs, min_size=1, max_size=5, unique_by=_rule_id)))
def test_plain_document_path_accepts_what_the_models_accept_and_views_them_alike(
    docs: list[Any],
) -> None:
    # The linter's fast yes validates into plain documents (tradekit.rules.RuleDoc); the models
    # (StrategyRule) remain the definition: same answer, same compiled view.
    def answer(check: Any) -> list[Any] | None:
        try:
            return list(check(docs, factors=FACTORS, symbols=set(SYMBOLS)))
        except RuleErrors:
            return None

    fast, typed = answer(check_rule_docs), answer(check_rules)
    assert (fast is None) == (typed is None)
    if typed is not None and fast is not None:
        views = [_view_doc(r) if isinstance(r, dict) else _view(r) for r in fast]
        assert views == [_view(r) for r in typed]


# ---- order intents ------------------------------------------------------------------------------
prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4)
ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)


@st.composite
def intents(draw: st.DrawFn) -> dict[str, Any]:
    market = draw(st.sampled_from(("FUT", "SPOT")))
    side = draw(st.sampled_from(("BUY", "SELL")))
    body: dict[str, Any] = {
        "intent_id": draw(ids),
        "market": market,
        "symbol": draw(st.sampled_from(SYMBOLS)),
        "side": side,
        "qty": str(draw(st.decimals(min_value=Decimal("0.001"), max_value=MAX_NUMBER, places=3))),
        "client_order_id": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)),
        "created_ts": draw(st.integers(min_value=0, max_value=9_999_999_999_999)),
    }
    if market == "SPOT" and draw(st.booleans()):
        lo, hi = sorted(draw(st.lists(prices, min_size=2, max_size=2, unique=True)))
        tp, sl = (hi, lo) if side == "BUY" else (lo, hi)
        body["exec_policy"] = {"type": "OCO", "tp_price": str(tp), "sl_price": str(sl)}
    else:
        body["exec_policy"] = draw(
            st.sampled_from(
                (
                    {"type": "MARKET"},
                    {"type": "MAKER_TAKER", "maker_wait_ms": 500},
                    {"type": "TWAP", "slices": 3, "gap_ms": 1000},
                )
            )
        )
    if market == "FUT" and draw(st.booleans()):
        lo, hi = sorted(draw(st.lists(prices, min_size=2, max_size=2, unique=True)))
        sl, tp = (lo, hi) if side == "BUY" else (hi, lo)
        body["sl"] = {"type": "STOP_MARKET", "price": str(sl)}
        body["tp"] = {"type": "TAKE_PROFIT_MARKET", "price": str(tp)}
        body["leverage"] = draw(st.integers(min_value=1, max_value=125))
    return body


@PROPS
@given(body=intents())
def test_intent_round_trips_through_json_unchanged(body: dict[str, Any]) -> None:
    intent = OrderIntent.model_validate(body)
    assert OrderIntent.model_validate_json(intent.model_dump_json()) == intent
    assert OrderIntent.model_validate(intent.model_dump(mode="json")) == intent
    assert intent.qty == Decimal(body["qty"])


NUMERIC_FIELDS = (("qty",), ("ref_price",), ("sl", "price"), ("tp", "price"))
NON_FINITE = (math.nan, math.inf, -math.inf, "NaN", "Infinity", "-Infinity", "nan", "inf")


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(body))
    node = out
    for p in path[:-1]:
        node = node.setdefault(p, {"type": "STOP_MARKET"} if p == "sl" else {})
    node[path[-1]] = value
    return out


@PROPS
@given(body=intents(), path=st.sampled_from(NUMERIC_FIELDS), bad=st.sampled_from(NON_FINITE))
def test_intent_with_non_finite_number_is_refused_naming_the_field(
    body: dict[str, Any], path: tuple[str, ...], bad: Any
) -> None:
    if path[0] in ("sl", "tp"):
        body = {**body, "market": "FUT", "exec_policy": {"type": "MARKET"}}
    with pytest.raises(ValidationError) as info:
        OrderIntent.model_validate(_with(body, path, bad))
    assert any(e["loc"][: len(path)] == path for e in info.value.errors()), info.value


@PROPS
@given(
    body=intents(),
    case=st.sampled_from(
        (
            (("qty",), str(MAX_NUMBER + 1)),
            (("qty",), "1e400"),
            (("qty",), 10**40),
            (("intent_id",), "i" * 65),
            (("client_order_id",), "c" * 200),
            (("created_ts",), 10**13),
            (("leverage",), 126),
            (("symbol",), "B" * 21),
        )
    ),
)
def test_intent_with_oversized_value_is_refused_naming_the_field(
    body: dict[str, Any], case: tuple[tuple[str, ...], Any]
) -> None:
    path, bad = case
    with pytest.raises(ValidationError) as info:
        OrderIntent.model_validate(_with(body, path, bad))
    assert any(e["loc"][: len(path)] == path for e in info.value.errors()), info.value


@PROPS
@given(doc=json_values)
def test_intent_on_any_json_answers_an_intent_or_validation_error(doc: Any) -> None:
    try:
        OrderIntent.model_validate(doc)
    except ValidationError:
        pass
    raw = json.dumps(doc, allow_nan=True)
    try:
        OrderIntent.model_validate_json(raw)
    except ValidationError:
        pass
