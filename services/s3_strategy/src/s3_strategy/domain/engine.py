"""The decision engine: one immutable, compiled decision context and the pure pipeline.

An `Engine` is built once from a *decision context* — a JSON document holding everything a
decision depends on besides its inputs:

    {"engine_version", "service",
     "bundle": {"bundle_id", "rev", "params", "rules": [full rule documents]},
     "factors": [factor_registry documents], "instruments": [Instrument JSON],
     "route_tables": {name: {"rev", "bands"}}, "limits": EngineLimits JSON}

Building lints and compiles it (rules → closures, limits → floats per symbol/market, route bands →
ready exec_policy bodies: the per-market plans of `market_plan.py`). Decisions only read it; hot
reload swaps the whole object. The same content, stored content-addressed, lets
`/decide/replay` rebuild the engine of any past decision.

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
from s3_strategy.domain.gates import run_gates
from s3_strategy.domain.market_plan import ContextError as ContextError  # re-exported
from s3_strategy.domain.market_plan import MarketPlan, SymbolPlan, build_market_plan, route_bands
from s3_strategy.domain.ml import MlInput, table_mult
from s3_strategy.domain.params import BundleParams, EngineLimits
from s3_strategy.domain.reasons import Reason
from s3_strategy.domain.rules import build_rulesets, factors_from_docs, lint_rules
from s3_strategy.domain.rules import evaluate as eval_rules
from s3_strategy.domain.sizing import QtyAboveMax, Sized, size_fut, size_spot
from tradekit.enums import Market, Side
from tradekit.errors import InvalidIntent
from tradekit.ids import decision_client_order_id
from tradekit.instrument import Instrument

# 2: loss cap with fees, factor bounds, positions in the gates, SPOT budget ceiling (issue 11)
ENGINE_VERSION = "s3-engine/2"
SERVICE = "s3-strategy"
_SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
# Added to division results before str(): 1.2/0.006 prints "200.00000000", not "2E+2".
_Z8 = Decimal("0.00000000")


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
    rules_mult: Decimal = Decimal(1)


class Engine:
    """Compiled decision context. Immutable by convention: never mutate, build a new one."""

    __slots__ = (
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
        bands_of = route_bands(tables)
        self.plans = {
            sym: SymbolPlan(
                inst,
                {
                    m: build_market_plan(
                        inst,
                        m,
                        rules=rulesets[(sym, m.value)],
                        params=self.params,
                        limits=self.limits,
                        bands_of=bands_of,
                        factors=factors,
                    )
                    for m in inst.markets
                },
            )
            for sym, inst in by_symbol.items()
        }

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
        pre.rules_mult = ro.mult
        pre.plan, pre.inst, pre.ready = mp, sp.inst, True
        return pre

    def finish(self, pre: Pre, ml: MlInput, *, signal_id: str) -> Outcome:
        out = pre.outcome
        if not pre.ready:
            return out
        mp, inst, x = pre.plan, pre.inst, pre.features
        assert mp is not None and inst is not None and x is not None
        # L2
        ml_out: dict[str, Any] = {
            "p": ml.p,
            "model_version": ml.model_version,
            "fallback": ml.fallback,
        }
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
                    inst,
                    side,
                    entry,
                    sized.qty,
                    d_base=d_base,
                    max_loss=mp.max_loss,
                    target_net=mp.tp_pct * sized.margin,
                    f_in=mp.f_in,
                    f_out=mp.f_out,
                    f_stop=mp.f_stop,
                )
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
            svc="s3",
            symbol=pre.symbol,
            side=side_s,
            feature_ts_ms=pre.feature_ts,
            config_rev=self.config_rev,
            market=market_s,
        )
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
