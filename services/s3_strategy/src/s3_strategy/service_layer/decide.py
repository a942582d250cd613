"""DecisionService: one code path for live and dry-run decisions.

Order of effects for a live `open` (spec C4/C5):
  lock:pos:{symbol} (≤ 3 s) → SET NX idem:order:{client_order_id} → signal written →
  XADD orders:intent + POST S4 /orders → signal updated with the publish report.
The client_order_id is derived from (symbol, side, feature ts, config_rev), so a retried
decision on the same inputs hits the idempotency key and cannot open twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s3_strategy.adapters.publisher import IntentPublisher, PublishReport
from s3_strategy.config import Settings
from s3_strategy.domain.pipeline import Decision, Limits, Reason, SizingParams, decide
from s3_strategy.metrics import StrategyMetrics
from svckit import jsonutil, keys
from svckit.clock import Clock
from svckit.redisio import RedisClient, claim_once, hold_lock, new_token, xadd_json
from svckit.store.base import DocumentStore
from tradekit.enums import Market, Side
from tradekit.events import Alert
from tradekit.ids import decision_client_order_id
from tradekit.instrument import Instrument
from tradekit.intents import MarketPolicy, OrderIntent

log = logging.getLogger(__name__)


class UnknownSymbol(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ConfigBundle:
    """The immutable bundle decisions are made with; hot reload swaps it whole."""

    rev: str
    bundle_id: str
    params: Mapping[str, Any]


class DecisionService:
    def __init__(
        self,
        *,
        settings: Settings,
        redis: RedisClient,
        store: DocumentStore,
        publisher: IntentPublisher,
        instruments: Mapping[str, Instrument],
        bundle: ConfigBundle,
        clock: Clock,
        metrics: StrategyMetrics,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.publisher = publisher
        self.instruments = dict(instruments)
        self.bundle = bundle
        self.clock = clock
        self.metrics = metrics

    async def read_features(self, symbol: str) -> tuple[dict[str, float], int | None]:
        raw = await self.redis.get(keys.feat_last(symbol))
        if raw is None:
            return {}, None
        data = jsonutil.loads(raw)
        ts = data.get("ts")
        values = {
            k: float(v)
            for k, v in data.items()
            if k not in ("symbol", "ts") and isinstance(v, int | float) and not isinstance(v, bool)
        }
        return values, int(ts) if isinstance(ts, int | float) else None

    async def open_entries(self, symbol: str) -> int:
        """Open entries as S4 reports them (parent orders not yet terminal)."""
        n = 0
        for status in ("NEW", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "AMBIGUOUS"):
            n += await self.store.count(
                "orders", {"symbol": symbol, "status": status, "parent_client_order_id": None}
            )
        return n

    async def decide(
        self,
        *,
        symbol: str,
        market: Market = Market.FUT,
        side_hint: Side | None = None,
        dry_run: bool = False,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        inst = self.instruments.get(symbol)
        if inst is None:
            raise UnknownSymbol(symbol)
        bundle = self.bundle  # pinned for the whole decision (RCU)
        features, ts = await self.read_features(symbol)
        override = (context or {}).get("features")
        if isinstance(override, Mapping):
            features.update({k: float(v) for k, v in override.items() if k != "ts"})
            if "ts" in override:
                ts = int(override["ts"])
        limits = Limits(
            max_funding_abs=self.settings.max_funding_abs,
            spread_bp_limit=inst.spread_bp_limit or self.settings.spread_bp_limit_default,
            depth_top1_usdt_min=(
                inst.depth_top1_usdt_min or self.settings.depth_top1_usdt_min_default
            ),
            concurrent_entries_per_market=self.settings.concurrent_entries_per_market,
            feature_max_age_ms=int(
                bundle.params.get("feature_max_age_ms", self.settings.feature_max_age_ms)
            ),
        )
        sizing = SizingParams(
            margin_base_usdt=self.settings.margin_base_usdt,
            leverage=self.settings.leverage_default,
            spot_quote_budget_usdt=Decimal(str(bundle.params.get("spot_quote_budget_usdt", 200))),
        )
        now = self.clock.now_ms()
        entries = await self.open_entries(symbol)
        d = decide(
            market=market, inst=inst, features=features, feature_ts=ts, now_ms=now,
            limits=limits, sizing=sizing, open_entries=entries, side_hint=side_hint,
        )  # fmt: skip
        signal_id = uuid.uuid4().hex
        intent: OrderIntent | None = None
        if d.open:
            assert d.side is not None and d.qty is not None and ts is not None
            coid = decision_client_order_id(
                svc="s3", symbol=symbol, side=d.side.value, feature_ts_ms=ts,
                config_rev=bundle.rev,
            )  # fmt: skip
            intent = OrderIntent(
                intent_id=signal_id,
                market=market,
                symbol=symbol,
                side=d.side,
                qty=d.qty,
                exec_policy=MarketPolicy(),
                client_order_id=coid,
                leverage=sizing.leverage if market is Market.FUT else None,
                ref_price=d.price,
                signal_id=signal_id,
                config_rev=bundle.rev,
                created_ts=now,
            )
        result = self._result(d, intent, bundle, signal_id, dry_run)
        signal = {
            "_key": signal_id,
            "signal_id": signal_id,
            "t0": now,
            "symbol": symbol,
            "market": market.value,
            "features": {**features, "ts": ts},
            "gates": result["gates"],
            "rules_fired": [],
            "ml": None,
            "decision": result["decision"],
            "reason": result["reason"],
            "intent": result.get("intent"),
            "config_rev": bundle.rev,
            "dry_run": dry_run,
        }
        if intent is None or dry_run:
            await self.store.insert("signals", signal)
        else:
            await self._emit(intent, signal, result)
        self._observe(result, dry_run, time.perf_counter() - t0)
        return result

    def _result(
        self,
        d: Decision,
        intent: OrderIntent | None,
        bundle: ConfigBundle,
        signal_id: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": "open" if d.open else "skip",
            "reason": d.reason.value,
            "message": d.message,
            "config_rev": bundle.rev,
            "rules_fired": [],
            "gates": [g.as_dict() for g in d.gates],
            "signal_id": signal_id,
            "dry_run": dry_run,
        }
        if intent is not None:
            out["intent"] = intent.model_dump(mode="json", exclude_none=True)
        return out

    async def _emit(
        self, intent: OrderIntent, signal: dict[str, Any], result: dict[str, Any]
    ) -> None:
        token = new_token("s3")
        async with hold_lock(
            self.redis, keys.lock_pos(intent.symbol), ttl_ms=keys.POS_LOCK_MAX_MS,
            wait_ms=keys.POS_LOCK_MAX_MS, owner="s3",
        ):  # fmt: skip
            if not await claim_once(
                self.redis, keys.idem_order(intent.client_order_id), token, keys.IDEM_TTL_S
            ):
                result.update(
                    decision="skip",
                    reason=Reason.DUPLICATE_DECISION.value,
                    message=f"{intent.client_order_id} was already emitted",
                )
                result.pop("intent", None)
                signal.update(decision="skip", reason=Reason.DUPLICATE_DECISION.value, intent=None)
                await self.store.insert("signals", signal)
                return
            await self.store.insert("signals", signal)
            report = await self.publisher.publish(intent.model_dump(mode="json", exclude_none=True))
        result["publish"] = report.as_dict()
        await self.store.update("signals", signal["_key"], {"publish": report.as_dict()})
        await self._report_failures(intent, report)

    async def _report_failures(self, intent: OrderIntent, report: PublishReport) -> None:
        for path, state in (("stream", report.stream), ("rest", report.rest)):
            if state == "failed":
                self.metrics.publish_failures.labels(path).inc()
        if report.stream == "failed" or report.rest == "failed":
            alert = Alert(
                source="s3-strategy",
                kind="PUBLISH_FAILED" if not report.delivered else "PUBLISH_DEGRADED",
                severity="critical" if not report.delivered else "warning",
                message=f"{intent.client_order_id}: {'; '.join(report.errors)}",
                ts=self.clock.now_ms(),
                data={"client_order_id": intent.client_order_id, "symbol": intent.symbol},
            )
            log.error("publish problem: %s", alert.message)
            try:
                await xadd_json(self.redis, keys.ALERTS, alert.model_dump(mode="json"))
            except Exception:
                log.exception("could not write alert")

    def _observe(self, result: dict[str, Any], dry_run: bool, seconds: float) -> None:
        self.metrics.decide_latency.labels(str(dry_run).lower()).observe(seconds)
        self.metrics.decisions.labels(result["decision"], result["reason"]).inc()
        if result["decision"] == "skip":
            self.metrics.gate_skips.labels(result["reason"]).inc()
