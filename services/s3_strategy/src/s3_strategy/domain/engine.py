"""The decision engine: one immutable, compiled decision context and the pure pipeline.

An `Engine` is built once from a *decision context* — a JSON document holding everything a
decision depends on besides its inputs:

    {"engine_version", "service",
     "bundle": {"bundle_id", "rev", "params", "rules": [full rule documents]},
     "factors": [factor_registry documents], "instruments": [Instrument JSON],
     "route_tables": {name: {"rev", "bands"}}, "limits": EngineLimits JSON}

Building lints and compiles it (rules → closures, limits → floats per symbol/market, route bands →
ready exec_policy bodies). Decisions only read it; hot reload swaps the whole object. The same
content, stored content-addressed, lets `/decide/replay` rebuild the engine of any past decision.

The pipeline is split at the one await: `pre()` runs features → L0 gates → side → L1 rules and
`finish()` runs L2 (given the scorer's answer) → sizing → SL/TP → intent. Neither does I/O or
raises on a data problem: every early exit is a skip with a `Reason`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s3_strategy.domain import sl_tp
from s3_strategy.domain.gates import GateLimits, run_gates
from s3_strategy.domain.ml import MlInput, table_mult
from s3_strategy.domain.params import BundleParams, EngineLimits, MlRow
from s3_strategy.domain.reasons import Reason
from s3_strategy.domain.rules import (
    Factor,
    RuleSet,
    build_rulesets,
    factors_from_docs,
    lint_rules,
)
from s3_strategy.domain.rules import evaluate as eval_rules
from s3_strategy.domain.sizing import QtyAboveMax, Sized, size_fut, size_spot
from tradekit.enums import Market, Side
from tradekit.errors import InvalidIntent
from tradekit.ids import decision_client_order_id
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, MarketPolicy, TwapPolicy, TwapSpec
from tradekit.routing import RouteBand, RouteBands

# 2: loss cap with fees, factor bounds, positions in the gates, SPOT budget ceiling (issue 11)
ENGINE_VERSION = "s3-engine/2"
SERVICE = "s3-strategy"
GATE_FEATURES = ("mid", "spread_bps", "depth_top1_usdt")
SIDE_FEATURES = ("ma7_5m", "ma25_5m")
_SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
# Added to division results before str(): 1.2/0.006 prints "200.00000000", not "2E+2".
_Z8 = Decimal("0.00000000")


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


@dataclass(slots=True)
class Outcome:
    """The explainable result of the pure pipeline (JSON-ready values only)."""

    decision: str = "skip"
    reason: Reason = Reason.OK
    message: str | None = None
    side: str | None = None
    gates: list[dict[str, Any]] | None = None
    rules_fired: list[dict[str, Any]] | None = None
    rules_mult: dict[str, float] | None = None
    ml: dict[str, Any] | None = None
    sizing: dict[str, Any] | None = None
    brackets: dict[str, Any] | None = None
    intent: dict[str, Any] | None = None

    def skip(self, reason: Reason, message: str) -> Outcome:
        self.decision, self.reason, self.message = "skip", reason, message
        return self

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision,
            "reason": self.reason._value_,
            "gates": self.gates or [],
            "rules_fired": self.rules_fired or [],
        }
        for key in ("message", "side", "rules_mult", "ml", "sizing", "brackets", "intent"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(slots=True)
class Pre:
    """State carried from pre() to finish(); `ready` ⇒ the scorer should be asked."""

    outcome: Outcome
    ready: bool = False
    symbol: str = ""
    market: Market = Market.FUT
    plan: MarketPlan | None = None
    inst: Instrument | None = None
    features: Mapping[str, float] | None = None
    feature_ts: int = 0
    now_ms: int = 0
    side: Side = Side.BUY
    rules_mult_raw: Decimal = Decimal(1)
    rules_mult: Decimal = Decimal(1)


def _policy_body(model: MakerTakerPolicy | TwapPolicy | MarketPolicy) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


class Engine:
    """Compiled decision context. Immutable by convention: never mutate, build a new one."""

    __slots__ = (
        "_band_cache",
        "bundle_id",
        "config_rev",
        "content",
        "ctx_rev",
        "limits",
        "max_age_ms",
        "params",
        "plans",
        "rule_ids",
        "rules_enabled",
    )

    def __init__(self, content: Mapping[str, Any], ctx_rev: str) -> None:
        self.content = content
        self.ctx_rev = ctx_rev
        try:
            bundle = content["bundle"]
            self.bundle_id = str(bundle["bundle_id"])
            self.config_rev = str(bundle["rev"])
            self.params = BundleParams.model_validate(bundle.get("params") or {})
            self.limits = EngineLimits.model_validate(content["limits"])
            instruments = [Instrument.model_validate(i) for i in content["instruments"]]
            factors = factors_from_docs(content["factors"])
            tables = content.get("route_tables") or {}
        except (KeyError, TypeError, ValueError) as exc:
            raise ContextError(f"decision context: {exc}") from exc
        by_symbol = {i.symbol: i for i in instruments}
        try:
            rules = lint_rules(
                bundle.get("rules") or [],
                factors=factors,
                symbols=by_symbol,
                max_depth=self.params.rules.max_depth,
            )
        except ValueError as exc:
            raise ContextError(str(exc)) from exc
        self.rule_ids = tuple(sorted(r.rule_id for r in rules))
        self.rules_enabled = sum(1 for r in rules if r.enabled)
        rulesets = build_rulesets(rules, by_symbol, SERVICE)
        self.max_age_ms = self.params.feature_max_age_ms or self.limits.feature_max_age_ms
        self._band_cache: dict[str, list[RouteBand]] = {}
        self.plans = {
            sym: SymbolPlan(
                inst,
                {
                    m: self._plan(inst, m, rulesets[(sym, m.value)], tables, factors)
                    for m in inst.markets
                },
            )
            for sym, inst in by_symbol.items()
        }

    # ---- building -----------------------------------------------------------------------------
    def _bands(self, tables: Mapping[str, Any], name: str) -> list[RouteBand]:
        # One validation per table per build (every symbol and market plan reads it).
        if name not in self._band_cache:
            self._band_cache[name] = self._validate_bands(tables, name)
        return self._band_cache[name]

    def _validate_bands(self, tables: Mapping[str, Any], name: str) -> list[RouteBand]:
        table = tables.get(name)
        if not isinstance(table, Mapping) or not table.get("bands"):
            raise ContextError(f"route table {name!r} is missing from the decision context")
        try:
            return list(RouteBands.model_validate(table["bands"]).root)
        except ValueError as exc:
            raise ContextError(f"route table {name!r}: {exc}") from exc

    def _plan(
        self,
        inst: Instrument,
        market: Market,
        rules: RuleSet,
        tables: Mapping[str, Any],
        factors: Mapping[str, Factor],
    ) -> MarketPlan:
        p, lim = self.params, self.limits
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
            for b in self._bands(tables, cfg.route_table):
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
            for b in self._bands(tables, scfg.route_table):
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

    # ---- the pipeline -------------------------------------------------------------------------
    def pre(
        self,
        *,
        symbol: str,
        market: Market,
        features: Mapping[str, float],
        feature_ts: int | None,
        now_ms: int,
        side_hint: Side | None,
        open_entries: int,
        margin_in_flight: float,
        open_positions: int = 0,
        margin_positions: float = 0.0,
    ) -> Pre:
        out = Outcome()
        pre = Pre(out, symbol=symbol, market=market, features=features, now_ms=now_ms)
        sp = self.plans.get(symbol)
        if sp is None:
            out.skip(Reason.MARKET_NOT_TRADED, f"{symbol} is not in instrument_registry")
            return pre
        mp = sp.markets.get(market)
        if mp is None:
            out.skip(Reason.MARKET_NOT_TRADED, f"{symbol} has no {market.value} market")
            return pre
        if market is Market.SPOT and side_hint is Side.SELL:
            out.skip(Reason.SIDE_NOT_ALLOWED, "SPOT entries are BUY only (no shorting)")
            return pre
        required = mp.required if side_hint is not None else mp.required_no_hint
        if feature_ts is None:
            out.skip(Reason.FEATURE_MISSING, "missing: ['ts']")
            return pre
        age = now_ms - feature_ts
        if age > self.max_age_ms or -age > self.max_age_ms:
            out.skip(
                Reason.FEATURE_STALE,
                f"features are {age} ms old (max {self.max_age_ms})"
                if age > 0
                else f"feature ts is {-age} ms in the future (clock skew)",
            )
            return pre
        if not required.issubset(features.keys()):
            missing = sorted(required.difference(features.keys()))
            by = mp.rules.needing(missing)
            msg = f"missing: {missing}" + (f"; needed by rules {by}" if by else "")
            out.skip(Reason.FEATURE_MISSING, msg)
            return pre
        # One C-level pass; NaN/inf propagate through the sum (a sum overflowing to inf is
        # flagged too: such magnitudes are data errors anyway). The slow path names the culprit.
        if not math.isfinite(sum(map(features.__getitem__, required))):
            bad = sorted(n for n in required if not math.isfinite(features[n])) or sorted(required)
            out.skip(Reason.FEATURE_INVALID, f"not finite: {bad}")
            return pre
        for name in mp.positive:
            if features[name] <= 0:
                out.skip(Reason.FEATURE_INVALID, f"{name} must be > 0, got {features[name]!r}")
                return pre
        # factor_registry declares each feature's range: a negative spread or funding, a
        # percentile of 1.7, is a feed error, never a market to trade on.
        for name, fmin, fmax in mp.bounds if side_hint is not None else mp.bounds_no_hint:
            v = features[name]
            if (fmin is not None and v < fmin) or (fmax is not None and v > fmax):
                out.skip(
                    Reason.FEATURE_OUT_OF_RANGE,
                    f"{name}={v!r} outside factor_registry's range [{fmin}, {fmax}]",
                )
                return pre
        pre.feature_ts = feature_ts
        gates, reason = run_gates(
            features, mp.gate, open_entries, margin_in_flight, open_positions, margin_positions
        )
        out.gates = gates
        if reason is not Reason.OK:
            msg = f"gate {gates[-1]['gate']} failed"
            if reason in (Reason.POSITION_OPEN, Reason.CONCURRENT_ENTRIES, Reason.RISK_BUDGET):
                msg += (
                    f": {open_positions} open position(s) and {open_entries} entr(y/ies) in "
                    f"flight on {symbol}/{market.value}; "
                    f"{margin_positions + margin_in_flight:g} USDT committed overall"
                )
            out.skip(reason, msg)
            return pre
        if side_hint is not None:
            side = side_hint
        else:
            side = Side.SELL if features["ma7_5m"] < features["ma25_5m"] else Side.BUY
            if side is Side.SELL and market is Market.SPOT:
                out.side = "SELL"
                out.skip(Reason.SIDE_NOT_ALLOWED, "ma7_5m < ma25_5m says SELL; SPOT cannot short")
                return pre
        out.side = _SIDE[side]
        pre.side = side
        if mp.rules.empty:
            out.skip(Reason.NO_RULES, f"no ENABLED rule applies to {symbol}/{market.value}")
            return pre
        lo, hi = self.params.size_mult_clamp
        ro = eval_rules(mp.rules, features, lo, hi)
        out.rules_fired = ro.fired
        out.rules_mult = {"before_clamp": float(ro.mult_raw), "after_clamp": float(ro.mult)}
        if ro.skip_rule is not None:
            out.skip(Reason.RULE_SKIP, f"rule {ro.skip_rule} (skip_entry) fired")
            return pre
        pre.rules_mult_raw, pre.rules_mult = ro.mult_raw, ro.mult
        pre.plan, pre.inst, pre.ready = mp, sp.inst, True
        return pre

    def finish(self, pre: Pre, ml: MlInput, *, signal_id: str) -> Outcome:
        out = pre.outcome
        if not pre.ready:
            return out
        mp, inst, x = pre.plan, pre.inst, pre.features
        assert mp is not None and inst is not None and x is not None
        # L2
        ml_out: dict[str, Any] = {"p": ml.p, "model_version": ml.model_version,
                                  "fallback": ml.fallback}  # fmt: skip
        if ml.error is not None:
            ml_out["error"] = ml.error
        out.ml = ml_out
        ml_mult: Decimal | None
        if ml.fallback or ml.p is None:
            if mp.ml_fallback_skip:
                return out.skip(Reason.ML_UNAVAILABLE, f"scorer unavailable: {ml.error}")
            ml_mult = mp.ml_fallback_mult
        else:
            ml_mult = table_mult(mp.ml_table, ml.p)
            if ml_mult is None:
                return out.skip(
                    Reason.ML_LOW_SCORE, f"p={ml.p} below ml_table (min {mp.ml_table[0].p_min})"
                )
        ml_out["size_mult"] = float(ml_mult)
        lo, hi = mp.clamp
        total = pre.rules_mult * ml_mult
        size_mult = lo if total < lo else hi if total > hi else total
        # sizing
        entry = Decimal(repr(x["mid"]))
        fut = mp.fut
        try:
            sized: Sized = (
                size_fut(inst, entry, mp.margin_base, size_mult, mp.leverage)
                if fut
                else size_spot(inst, entry, mp.spot_budget, size_mult, mp.f_in)
            )
        except InvalidIntent as exc:
            return out.skip(Reason.MIN_NOTIONAL, str(exc))
        except QtyAboveMax as exc:
            return out.skip(Reason.QTY_ABOVE_MAX, str(exc))
        qty_s, entry_s = str(sized.qty), str(entry)
        out.sizing = {
            "rules_mult": float(pre.rules_mult),
            "ml_mult": float(ml_mult),
            "size_mult": float(size_mult),
            "entry": entry_s,
            "qty": qty_s,
            "notional_usdt": str(sized.notional),
            "margin_usdt": str(sized.margin + _Z8),
        }
        side = pre.side
        side_s, market_s = _SIDE[side], mp.market_s
        intent: dict[str, Any] = {
            "intent_id": signal_id,
            "market": market_s,
            "symbol": pre.symbol,
            "side": side_s,
            "qty": qty_s,
        }
        policy = mp.bands[-1][1]
        for cap, body in mp.bands:
            if cap is None or sized.notional <= cap:
                policy = body
                break
        # SL/TP
        if mp.brackets_on:
            if mp.sl_pct is not None:
                d_base = mp.sl_pct * entry
            else:
                d_base = mp.atr_mult * Decimal(repr(x[mp.atr_feature]))
            try:
                b = sl_tp.solve(
                    inst, side, entry, sized.qty, d_base=d_base, max_loss=mp.max_loss,
                    target_net=mp.tp_pct * sized.margin, f_in=mp.f_in, f_out=mp.f_out,
                    f_stop=mp.f_stop,
                )  # fmt: skip
            except sl_tp.LossCapUnreachable as exc:
                return out.skip(Reason.MAX_LOSS_UNREACHABLE, str(exc))
            except sl_tp.BracketError as exc:
                return out.skip(Reason.BRACKETS_INVALID, str(exc))
            sl_s, tp_s = str(b.sl), str(b.tp)
            out.brackets = {
                "sl": sl_s,
                "tp": tp_s,
                "d": str(b.d + _Z8),
                "d_base": str(b.d_base),
                "d_cap": str(b.d_cap + _Z8),
                "loss_at_sl_usdt": str(b.loss_at_sl),
                "target_net_usdt": str(b.target_net),
                "net_at_tp_usdt": str(b.net_at_tp),
                "fees": mp.fee_names,
                "sl_one_tick_floor": b.sl_one_tick_floor,
            }
            if fut:
                intent["exec_policy"] = policy
                intent["sl"] = {"type": "STOP_MARKET", "price": sl_s}
                intent["tp"] = {"type": "TAKE_PROFIT_MARKET", "price": tp_s}
            else:
                intent["exec_policy"] = {"type": "OCO", "tp_price": tp_s, "sl_price": sl_s}
        else:
            intent["exec_policy"] = policy
        intent["client_order_id"] = decision_client_order_id(
            svc="s3", symbol=pre.symbol, side=side_s, feature_ts_ms=pre.feature_ts,
            config_rev=self.config_rev, market=market_s,
        )  # fmt: skip
        intent["reduce_only"] = False
        if fut:
            intent["leverage"] = mp.leverage
            out.sizing["leverage"] = mp.leverage
        intent["ref_price"] = entry_s
        intent["signal_id"] = signal_id
        intent["config_rev"] = self.config_rev
        intent["created_ts"] = pre.now_ms
        out.intent = intent
        out.decision, out.reason, out.message = "open", Reason.OK, None
        return out
