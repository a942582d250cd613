"""One rule language, one route table: the seed (svckit), S3's linter and engine, and S4's route
table accept and refuse exactly the same documents (issue 12 point 4: they used to disagree on
id length, priority cap, child limits, factor ranges, band bounds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from s3_strategy.domain.engine import ContextError
from s3_strategy.domain.rules import RuleLintError, factors_from_docs, lint_rules
from s4_router.policies.route_table import RouteTable, RouteTableError
from svckit.store.seed import FixtureError, load_fixtures
from tests.conftest import FIXTURES
from tests.unit.s3.helpers import engine, fixture

LEAF = {"f": "rv_1h", "op": "<", "v": 0.5}
SYMBOLS = {"BTCUSDT", "ETHUSDT", "QRLUSDT"}


def _rule(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "rule_id": "R-DRIFT",
        "priority": 5,
        "applies": {"symbols": ["BTCUSDT"]},
        "when": LEAF,
        "action": {"type": "size_mult", "value": 1.1},
        "status": "ENABLED",
    }
    doc.update(over)
    return doc


RULES: dict[str, dict[str, Any]] = {
    "priority over the cap": _rule(priority=2_000_000),
    "rule_id of 70 characters": _rule(rule_id="R-" + "x" * 68),
    "allOf with 65 children": _rule(when={"allOf": [LEAF] * 65}),
    "threshold outside the factor's range": _rule(when={"f": "rv_pctile_30d", "op": "<", "v": 25}),
    "unknown market": _rule(applies={"markets": ["OPTIONS"]}),
    "misspelt service": _rule(applies={"services": ["s3-stratgy"]}),
    "description of 5000 characters": _rule(description="x" * 5000),
    "unknown key": _rule(weight=3),
    "threshold of 1e16": _rule(when={"f": "rv_1h", "op": "<", "v": 1e16}),
    "size_mult with an extra key": _rule(action={"type": "size_mult", "value": 1.1, "cap": 2}),
}


def _fixtures_with(tmp_path: Path, name: str, content: Any) -> Path:
    for f in FIXTURES.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / name).write_text(json.dumps(content))
    return tmp_path


@pytest.mark.parametrize("case", list(RULES))
def test_rule_refused_by_the_linter_is_refused_by_the_seed(tmp_path: Path, case: str) -> None:
    doc = RULES[case]
    with pytest.raises(RuleLintError):
        lint_rules(
            [doc], factors=factors_from_docs(fixture("factor_registry.json")), symbols=SYMBOLS
        )
    rules = [*fixture("strategy_rules.json"), doc]
    with pytest.raises(FixtureError):
        load_fixtures(_fixtures_with(tmp_path, "strategy_rules.json", rules))


FACTORS: dict[str, list[dict[str, Any]]] = {
    "min above max": [{"name": "rv_1h", "type": "float", "min": 1, "max": 0}],
    "a bound of 1e400": [{"name": "rv_1h", "type": "float", "min": 0, "max": 10**400}],
    "type int": [{"name": "rv_1h", "type": "int"}],
}


@pytest.mark.parametrize("case", list(FACTORS))
def test_factor_refused_by_s3_is_refused_by_the_seed(tmp_path: Path, case: str) -> None:
    docs = FACTORS[case]
    with pytest.raises(RuleLintError):
        factors_from_docs(docs)
    with pytest.raises(FixtureError):
        load_fixtures(_fixtures_with(tmp_path, "factor_registry.json", docs))


BAND = {"notional_usdt_max": None, "maker_wait_ms": 1500, "twap": {"slices": 1, "gap_ms": 0}}
TABLES: dict[str, tuple[bool, list[dict[str, Any]]]] = {
    "maker wait of 700 s": (False, [{**BAND, "maker_wait_ms": 700_000}]),
    "a band capped at 0": (False, [{**BAND, "notional_usdt_max": 0}, BAND]),
    "100 TWAP slices": (False, [{**BAND, "twap": {"slices": 100, "gap_ms": 10}}]),
    "a band without twap (one slice)": (True, [{"notional_usdt_max": None, "maker_wait_ms": 5}]),
    "a band with TWAP jitter": (
        True,
        [{**BAND, "twap": {"slices": 2, "gap_ms": 10, "jitter_pct": 0.2}}],
    ),
    "descending caps": (
        False,
        [{**BAND, "notional_usdt_max": 500}, {**BAND, "notional_usdt_max": 200}, BAND],
    ),
    "unbounded band before the last": (False, [BAND, {**BAND, "notional_usdt_max": 5}]),
}


@pytest.mark.parametrize("case", list(TABLES))
def test_route_table_verdict_is_the_same_in_seed_s3_and_s4(tmp_path: Path, case: str) -> None:
    valid, bands = TABLES[case]
    verdicts: dict[str, bool] = {}
    try:
        RouteTable.parse(bands, rev="x")
        verdicts["s4"] = True
    except RouteTableError:
        verdicts["s4"] = False
    try:
        engine(bands=bands)
        verdicts["s3"] = True
    except ContextError:
        verdicts["s3"] = False
    try:
        load_fixtures(_fixtures_with(tmp_path, "route_table.json", bands))
        verdicts["seed"] = True
    except FixtureError:
        verdicts["seed"] = False
    assert verdicts == {"s4": valid, "s3": valid, "seed": valid}
