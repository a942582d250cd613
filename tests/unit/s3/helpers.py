"""Build S3 engines from the fixtures with overrides (no store, no Redis)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from s3_strategy.adapters.configstore import assemble, build_engine, limits_of
from s3_strategy.config import Settings
from s3_strategy.domain.engine import Engine, Outcome, Pre
from s3_strategy.domain.ml import MlInput
from tests.conftest import FIXTURES
from tradekit.enums import Market, Side

NOW = 1_700_000_000_000
BTC: dict[str, float] = {
    "mid": 65000.5,
    "price": 65000.5,
    "spread_bps": 0.15,
    "depth_top1_usdt": 50_000.0,
    "funding_rate": 0.0001,
    "funding_next_abs": 0.0001,
    "atr_14": 120.0,
    "rv_1h": 0.01,
    "rv_pctile_30d": 0.4,
    "ma7_5m": 65010.0,
    "ma25_5m": 64990.0,
    "ma_cross": 1.0,
    "rho_usdttwd_14": 0.1,
}
ML = MlInput(0.65, "mock-const-0.65")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def params(**over: Any) -> dict[str, Any]:
    """Fixture bundle params with top-level keys replaced, or nested ones as "a.b" keys."""
    p: dict[str, Any] = copy.deepcopy(fixture("config_bundle.json")["params"])
    for key, value in over.items():
        node = p
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return p


def engine(
    *,
    rules: list[dict[str, Any]] | None = None,
    bundle_params: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    instruments: list[dict[str, Any]] | None = None,
    bands: list[dict[str, Any]] | None = None,
) -> Engine:
    content = assemble(
        bundle_id="test",
        rev="rev-test",
        params=bundle_params if bundle_params is not None else params(),
        rules=rules if rules is not None else fixture("strategy_rules.json"),
        factors=fixture("factor_registry.json"),
        instruments=instruments or fixture("instrument_registry.json"),
        route_tables={"default": {"rev": "r", "bands": bands or fixture("route_table.json")}},
        limits=limits_of(settings or Settings()),
    )
    return build_engine(content)


def rule(
    rid: str,
    when: dict[str, Any],
    action: dict[str, Any] | None = None,
    *,
    priority: int = 50,
    symbols: list[str] | None = None,
    status: str = "ENABLED",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "rule_id": rid,
        "priority": priority,
        "applies": {"symbols": symbols or ["BTCUSDT"], "services": ["s3-strategy"]},
        "when": when,
        "action": action or {"type": "size_mult", "value": 1.1},
        "status": status,
        **extra,
    }


def pre(
    eng: Engine,
    features: Mapping[str, float] | None = None,
    *,
    symbol: str = "BTCUSDT",
    market: Market = Market.FUT,
    ts: int | None = NOW - 100,
    now: int = NOW,
    side: Side | None = None,
    entries: int = 0,
    margin: float = 0.0,
) -> Pre:
    return eng.pre(
        symbol=symbol,
        market=market,
        features=dict(BTC if features is None else features),
        feature_ts=ts,
        now_ms=now,
        side_hint=side,
        open_entries=entries,
        margin_in_flight=margin,
    )


def decide(
    eng: Engine, features: Mapping[str, float] | None = None, *, ml: MlInput = ML, **kw: Any
) -> Outcome:
    return eng.finish(pre(eng, features, **kw), ml, signal_id="sig-1")


def features(**over: float) -> dict[str, float]:
    return {**BTC, **over}


def reference_eval(node: Mapping[str, Any], x: Mapping[str, float]) -> bool:
    """Tree-walking interpreter of a condition (the specification the compiler must match)."""
    if "allOf" in node:
        return all(reference_eval(c, x) for c in node["allOf"])
    if "anyOf" in node:
        return any(reference_eval(c, x) for c in node["anyOf"])
    if "not" in node:
        return not reference_eval(node["not"], x)
    a, op, b = x[node["f"]], node["op"], node["v"]
    return bool(
        a < b
        if op == "<"
        else a <= b
        if op == "<="
        else a > b
        if op == ">"
        else a >= b
        if op == ">="
        else a == b
        if op == "=="
        else a != b
    )
