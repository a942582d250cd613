"""Market plans: what a decision on one instrument and market needs, compiled once per decision
context (`Engine`): gate limits, the symbol's rules, the features required and their declared
bounds, the route table's bands as ready exec_policy bodies, and the sizing / SL-TP parameters
flattened so that the pipeline's hot path reads no attribute chains.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s3_strategy.domain.gates import GateLimits
from s3_strategy.domain.params import BundleParams, EngineLimits, MlRow
from s3_strategy.domain.rules import Factor, RuleSet
from tradekit.enums import Market
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, MarketPolicy, TwapPolicy, TwapSpec
from tradekit.routing import RouteBand, RouteBands

GATE_FEATURES = ("mid", "spread_bps", "depth_top1_usdt")
SIDE_FEATURES = ("ma7_5m", "ma25_5m")


class ContextError(ValueError):
    """The decision context cannot be built (lint errors, bad params, missing route table)."""


@dataclass(frozen=True, slots=True)
class MarketPlan:
    market: Market
    market_s: str
    gate: GateLimits
    rules: RuleSet
    required: frozenset[str]  # with a side hint
    required_no_hint: frozenset[str]  # + the MA features the side is chosen from
    positive: tuple[str, ...]  # features that must be > 0 (prices, ATR)
    # factor_registry's declared [min, max] of the features read (name, lo, hi)
    bounds: tuple[tuple[str, float | None, float | None], ...]
    bounds_no_hint: tuple[tuple[str, float | None, float | None], ...]
    bands: tuple[tuple[Decimal | None, dict[str, Any]], ...]  # (notional max, exec_policy)
    # Flattened params for finish(): no attribute chains in the hot path.
    fut: bool
    clamp: tuple[Decimal, Decimal]
    ml_table: tuple[MlRow, ...]
    ml_fallback_skip: bool
    ml_fallback_mult: Decimal
    margin_base: Decimal
    leverage: int
    spot_budget: Decimal
    brackets_on: bool
    atr_feature: str
    atr_mult: Decimal
    sl_pct: Decimal | None  # SPOT with sl_pct: stop distance sl_pct·entry instead of ATR
    tp_pct: Decimal  # net profit target as a fraction of the margin (FUT) / quote (SPOT)
    max_loss: Decimal
    f_in: Decimal
    f_out: Decimal
    f_stop: Decimal  # a stop takes liquidity: always the taker fee
    fee_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class SymbolPlan:
    inst: Instrument
    markets: dict[Market, MarketPlan]


def route_bands(tables: Mapping[str, Any]) -> Callable[[str], list[RouteBand]]:
    """The decision context's route tables by name, each validated once per build (every
    symbol and market plan reads it)."""

    @functools.cache
    def bands(name: str) -> list[RouteBand]:
        table = tables.get(name)
        if not isinstance(table, Mapping) or not table.get("bands"):
            raise ContextError(f"route table {name!r} is missing from the decision context")
        try:
            return list(RouteBands.model_validate(table["bands"]).root)
        except ValueError as exc:
            raise ContextError(f"route table {name!r}: {exc}") from exc

    return bands


def _policy_body(model: MakerTakerPolicy | TwapPolicy | MarketPolicy) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def build_market_plan(
    inst: Instrument,
    market: Market,
    *,
    rules: RuleSet,
    params: BundleParams,
    limits: EngineLimits,
    bands_of: Callable[[str], list[RouteBand]],
    factors: Mapping[str, Factor],
) -> MarketPlan:
    """One instrument's plan on one market (limits, required features, bands, fees)."""
    p, lim = params, limits
    fut = market is Market.FUT
    hi = p.size_mult_clamp[1]
    # SPOT never spends more than its budget, whatever the multiplier (domain/sizing.py)
    max_entry = lim.margin_base_usdt * hi if fut else p.spot_quote_budget_usdt
    gate = GateLimits(
        max_funding_abs=float(lim.max_funding_abs),
        spread_bp_limit=float(inst.spread_bp_limit or lim.spread_bp_limit_default),
        depth_top1_usdt_min=float(
            inst.depth_top1_usdt_min
            if inst.depth_top1_usdt_min is not None
            else lim.depth_top1_usdt_min_default
        ),
        risk_budget_usdt=float(p.risk.budget.max_margin_in_flight_usdt),
        max_entry_margin_usdt=float(max_entry),
        concurrent_entries=lim.concurrent_entries_per_market,
        check_funding=fut,
    )
    required = set(GATE_FEATURES) | rules.features
    positive = ["mid"]
    if fut:
        required.add("funding_next_abs")
    needs_atr = p.brackets.enabled and (fut or p.exec_policy.SPOT.sl_pct is None)
    if needs_atr:
        required.add(p.brackets.atr_feature)
        positive.append(p.brackets.atr_feature)
    bands: list[tuple[Decimal | None, dict[str, Any]]] = []
    if fut:
        cfg = p.exec_policy.FUT
        for b in bands_of(cfg.route_table):
            model: MakerTakerPolicy | TwapPolicy | MarketPolicy
            if cfg.type == "MARKET":
                model = MarketPolicy()
            elif cfg.type == "TWAP":
                model = TwapPolicy(
                    slices=b.twap.slices, gap_ms=b.twap.gap_ms, maker_wait_ms=b.maker_wait_ms
                )
            else:
                twap = (
                    TwapSpec(slices=b.twap.slices, gap_ms=b.twap.gap_ms)
                    if cfg.twap and b.twap.slices > 1
                    else None
                )
                model = MakerTakerPolicy(
                    maker_wait_ms=b.maker_wait_ms,
                    twap=twap,
                    chase_one_tick=cfg.taker_fallback == "chase_one_tick",
                )
            bands.append((b.notional_usdt_max, _policy_body(model)))
    else:
        scfg = p.exec_policy.SPOT
        for b in bands_of(scfg.route_table):
            entry_model: MakerTakerPolicy | MarketPolicy = (
                MarketPolicy()
                if scfg.entry == "MARKET"
                else MakerTakerPolicy(maker_wait_ms=b.maker_wait_ms)
            )
            bands.append((b.notional_usdt_max, _policy_body(entry_model)))
    bp, spot = p.brackets, p.exec_policy.SPOT

    def bounds(names: set[str]) -> tuple[tuple[str, float | None, float | None], ...]:
        out = []
        for name in sorted(names):
            f = factors.get(name)
            if f is not None and (f.min is not None or f.max is not None):
                out.append((name, f.min, f.max))
        return tuple(out)

    return MarketPlan(
        market=market,
        market_s=market.value,
        gate=gate,
        rules=rules,
        required=frozenset(required),
        required_no_hint=frozenset(required | set(SIDE_FEATURES)),
        positive=tuple(positive),
        bounds=bounds(required),
        bounds_no_hint=bounds(required | set(SIDE_FEATURES)),
        bands=tuple(bands),
        fut=fut,
        clamp=p.size_mult_clamp,
        ml_table=p.ml_table,
        ml_fallback_skip=p.ml.fallback == "skip",
        ml_fallback_mult=p.ml.fallback_size_mult,
        margin_base=lim.margin_base_usdt,
        leverage=lim.leverage_default,
        spot_budget=p.spot_quote_budget_usdt,
        brackets_on=bp.enabled,
        atr_feature=bp.atr_feature,
        atr_mult=lim.atr_mult,
        sl_pct=None if fut else spot.sl_pct,
        tp_pct=spot.tp_pct if (not fut and spot.tp_pct is not None) else p.tp_net_profit_pct,
        max_loss=lim.max_loss_usdt,
        f_in=inst.taker_fee if bp.entry_fee == "taker" else inst.maker_fee,
        f_out=inst.taker_fee if bp.exit_fee == "taker" else inst.maker_fee,
        f_stop=inst.taker_fee,
        fee_names={"entry": bp.entry_fee, "exit": bp.exit_fee},
    )
