"""DecisionService: one code path for live, dry-run, batch and replay decisions.

A live decision (spec C4/C5), in order:

1. take `lock:pos:{symbol}` (waits ≤ S3_LOCK_WAIT_MS, held ≤ 3 s; busy ⇒ skip `LOCK_BUSY`);
2. read features + the ledger of entries in flight and open positions (one Redis round trip);
   `context.features` are merged in dry runs only (a live decision with them is refused);
3. run the pure pipeline (engine.pre → scorer with deadline → engine.finish);
4. if `open`: `SET NX idem:order:{client_order_id}` with an `s3:` token (taken ⇒ skip
   `DUPLICATE_DECISION`), then add the entry to the in-flight ledger;
5. write the signal (the decision is persisted *before* anything is published or answered —
   group-committed with the decisions made meanwhile, see adapters/signals.py; if the write
   fails the claim and ledger entry are undone and the request fails with 503);
6. release the lock; XADD `orders:intent` and POST S4 `/orders` (each retried; a path that
   still fails raises an alert and is reported in `publish`); the signal is updated with the
   publish report; a refusal or terminal answer from S4 clears the ledger entry.

The lock covers the read-decide-claim-register section only, so a slow S4 never holds other
decisions on the symbol for seconds, while the ledger entry written under the lock makes the
next decision see this entry. A dry run does steps 2, 3 and 5 only: no lock, no claim, no
ledger, no stream, no REST, no alert — the signal (marked `dry_run`) is the only write.

The client_order_id is derived from (symbol, side, feature ts, config_rev, market), so a
retried decision on the same inputs hits the idempotency key and cannot open twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from s3_strategy.adapters.alerts import AlertSink
from s3_strategy.adapters.configstore import ConfigStore
from s3_strategy.adapters.entries import EntriesLedger, protected
from s3_strategy.adapters.intent_publisher import IntentPublisher
from s3_strategy.adapters.signals import SignalWriter
from s3_strategy.adapters.state import MarketState, StateReader, derive
from s3_strategy.config import Settings
from s3_strategy.domain.engine import Engine, Outcome
from s3_strategy.domain.ml import MlInput, Scorer
from s3_strategy.domain.reasons import Reason
from s3_strategy.metrics import StrategyMetrics
from s3_strategy.service_layer.emission import Emission
from s3_strategy.service_layer.replay import (
    EngineCache,
    SignalNotFound,
    compare,
    recorded_inputs,
    signal_doc,
)
from svckit import keys
from svckit.clock import Clock
from svckit.errors import InfraError
from svckit.logging import bind_log_context
from svckit.redisio import (
    LockNotAcquired,
    RedisClient,
    claim_once,
    hold_lock,
    new_token,
    release_claim,
)
from svckit.store.base import DocumentStore
from tradekit.enums import Market, Side

log = logging.getLogger(__name__)


class UnknownSymbol(Exception):
    pass


# What-if values (dry runs) the service accepts, whichever path calls it (the HTTP schema reads
# these too): numbers bounded in magnitude, `ts` epoch ms from 2001 to 2286.
FEATURE_ABS_MAX = 1e15
TS_MIN, TS_MAX = 10**12, 10**13 - 1


class DecideRefused(Exception):
    """A request this service refuses before any side effect; the message starts with the
    request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class DecideInput:
    symbol: str
    market: Market = Market.FUT
    side_hint: Side | None = None
    dry_run: bool = False
    features: Mapping[str, float] | None = None  # context.features (override; "ts" in ms)


@dataclass(frozen=True, slots=True)
class ItemFailed:
    """A batch item that could not be decided: `error` says why (refused, unknown symbol,
    infrastructure, or unexpected); `entrypoints/statuses.py` maps it to HTTP."""

    symbol: str
    error: Exception


def apply_override(result: dict[str, Any], reason: Reason, message: str) -> None:
    """A service-level skip on top of the pipeline's answer (DUPLICATE_DECISION, LOCK_BUSY)."""
    result["decision"] = "skip"
    result["reason"] = reason.value
    result["message"] = message
    result.pop("intent", None)


def _answer(out: Outcome, engine: Engine, signal_id: str) -> dict[str, Any]:
    return {
        **out.as_dict(),
        "config_rev": engine.config_rev,
        "ctx_rev": engine.ctx_rev,
        "signal_id": signal_id,
    }


@dataclass(kw_only=True, eq=False)
class DecisionService:
    settings: Settings
    redis: RedisClient
    store: DocumentStore
    publisher: IntentPublisher
    # Swapped whole by a hot reload (`swap`); a decision pins the one it started with (RCU).
    engine: Engine
    scorer: Scorer
    state: StateReader
    ledger: EntriesLedger
    alerts: AlertSink
    configs: ConfigStore
    clock: Clock
    metrics: StrategyMetrics

    def __post_init__(self) -> None:
        self.signals = SignalWriter(self.store, observe=self._observe_commit)  # group commit
        self._engines = EngineCache(self.configs)
        self._engines.put(self.engine)
        self._latency = {
            True: self.metrics.decide_latency.labels("true"),
            False: self.metrics.decide_latency.labels("false"),
        }
        self._observe_config(self.engine)
        self.emission = Emission(
            publisher=self.publisher,
            ledger=self.ledger,
            alerts=self.alerts,
            store=self.store,
            metrics=self.metrics,
        )

    def _observe_commit(self, size: int, seconds: float) -> None:
        self.metrics.signal_batch.observe(size)
        self.metrics.signal_commit.observe(seconds)

    # ---- config (RCU) -------------------------------------------------------------------------
    def swap(self, engine: Engine) -> Engine:
        """Install a new engine; decisions in flight keep the one they pinned. Returns the old."""
        old, self.engine = self.engine, engine
        self._engines.put(engine)
        self._observe_config(engine)
        return old

    def _observe_config(self, engine: Engine) -> None:
        self.metrics.rules_loaded.set(engine.rules_enabled)
        self.metrics.config_info.clear()
        self.metrics.config_info.labels(engine.config_rev, engine.ctx_rev).set(1)

    # ---- one decision -------------------------------------------------------------------------
    async def decide(self, req: DecideInput) -> dict[str, Any]:
        t0 = time.perf_counter()
        symbol, market, side_hint = req.symbol, req.market, req.side_hint
        dry_run, features = req.dry_run, req.features
        engine = self.engine  # pinned for the whole decision (RCU)
        if symbol not in engine.plans:
            raise UnknownSymbol(symbol)
        if not dry_run:
            # A live decision trades on the market as published in Redis, never on numbers a
            # caller sends (a what-if `mid` of 70,000 against a 65,095 market opened a trade
            # whose stop the venue then refused): what-if inputs are for dry runs only.
            if features is not None:
                raise DecideRefused(
                    "context.features",
                    "what-if features are accepted only with dry_run: true; a live decision "
                    "reads market data from Redis alone",
                )
            if symbol not in self.settings.symbols:
                raise DecideRefused(
                    "symbol",
                    f"{symbol} is not traded by this service (S3_SYMBOLS="
                    f"{','.join(self.settings.symbols)}); a dry run is allowed",
                )
        for name, v in (features or {}).items():
            where = f"context.features.{name}"
            if type(v) is not float and type(v) is not int:
                raise DecideRefused(where, f"must be a number, got {v!r}")
            if not math.isfinite(v) or abs(v) > FEATURE_ABS_MAX:
                raise DecideRefused(where, f"must be finite and within ±{FEATURE_ABS_MAX:g}")
        ts = (features or {}).get("ts")
        if ts is not None and (ts != int(ts) or not TS_MIN <= ts <= TS_MAX):
            raise DecideRefused("context.features.ts", f"must be epoch ms (13 digits), got {ts!r}")
        now = self.clock.now_ms()
        signal_id = uuid.uuid4().hex
        bind_log_context(signal_id=signal_id)
        claimed_coid: str | None = None
        claim_token = ""
        async with contextlib.AsyncExitStack() as stack:
            if not dry_run:
                try:
                    lock = hold_lock(
                        self.redis,
                        keys.lock_pos(symbol),
                        ttl_ms=keys.POS_LOCK_MAX_MS,
                        wait_ms=self.settings.lock_wait_ms,
                        owner="s3",
                    )
                    await stack.enter_async_context(lock)
                except LockNotAcquired as exc:
                    result = _answer(Outcome().skip(Reason.LOCK_BUSY, str(exc)), engine, signal_id)
                    result["dry_run"] = False
                    empty = MarketState({}, None, 0, 0.0)
                    signal = signal_doc(result, now, symbol, market, side_hint, empty)
                    signal["override"] = {"reason": Reason.LOCK_BUSY.value}
                    await self.signals.write(signal)
                    self._observe(result, False, t0)
                    return result
            state = await self.state.read(symbol, market.value)
            if features:
                state.features.update({k: v for k, v in features.items() if k != "ts"})
                if "ts" in features:
                    state.ts = int(features["ts"])
                state.sources.append("context")
                state.overridden = sorted(features)
            derive(state.features)
            result = await self._run(
                engine,
                signal_id,
                now,
                symbol,
                market,
                side_hint,
                state,
                lambda: self._score(engine, symbol, state.features),
            )
            result["dry_run"] = dry_run
            if result.get("intent"):
                bind_log_context(
                    intent_id=result["intent"].get("intent_id"),
                    client_order_id=result["intent"].get("client_order_id"),
                )
            signal = signal_doc(result, now, symbol, market, side_hint, state)
            if not dry_run and result["decision"] == "open":
                coid = result["intent"]["client_order_id"]
                claim_token = new_token("s3")
                if await claim_once(
                    self.redis, keys.idem_order(coid), claim_token, keys.IDEM_TTL_S
                ):
                    claimed_coid = coid
                    await self.ledger.add(
                        coid,
                        symbol,
                        market.value,
                        result["sizing"]["margin_usdt"],
                        protected=protected(result["intent"]),
                    )
                else:
                    msg = f"{coid} was already emitted (idem:order claimed)"
                    apply_override(result, Reason.DUPLICATE_DECISION, msg)
                    apply_override(signal, Reason.DUPLICATE_DECISION, msg)
                    signal["override"] = {"reason": Reason.DUPLICATE_DECISION.value}
            try:
                await self.signals.write(signal)
            except BaseException:
                if claimed_coid is not None:  # not persisted ⇒ not emitted: undo, fail loudly
                    with contextlib.suppress(Exception):
                        await self.ledger.remove(claimed_coid)
                        await release_claim(self.redis, keys.idem_order(claimed_coid), claim_token)
                raise
        if claimed_coid is not None:
            await self.emission.publish(result, signal_id)
        if not dry_run:
            await self.emission.alert_on(result, symbol, market)
        self._observe(result, dry_run, t0)
        return result

    async def _run(
        self,
        engine: Engine,
        signal_id: str,
        now: int,
        symbol: str,
        market: Market,
        side_hint: Side | None,
        state: MarketState,
        score: Callable[[], Awaitable[MlInput]],
    ) -> dict[str, Any]:
        """The pipeline proper; shared by live/dry-run decisions and replays (which pass the
        recorded scorer answer as `score`)."""
        if state.error is not None and "mid" not in state.features:
            out = Outcome().skip(Reason.FEATURE_INVALID, state.error)
        else:
            p0 = time.perf_counter()
            pre = engine.pre(
                symbol=symbol,
                market=market,
                features=state.features,
                feature_ts=state.ts,
                now_ms=now,
                side_hint=side_hint,
                open_entries=state.open_entries,
                margin_in_flight=state.margin_in_flight,
                open_positions=state.open_positions,
                margin_positions=state.margin_positions,
            )
            spent = time.perf_counter() - p0
            if pre.ready:
                ml = await score()
                p0 = time.perf_counter()
                out = engine.finish(pre, ml, signal_id=signal_id)
                spent += time.perf_counter() - p0
            else:
                out = pre.outcome
            self.metrics.pipeline_latency.observe(spent)
        return _answer(out, engine, signal_id)

    async def _score(self, engine: Engine, symbol: str, features: Mapping[str, float]) -> MlInput:
        version = self.scorer.model_version
        deadline = engine.params.ml.deadline_ms / 1000
        try:
            async with asyncio.timeout(deadline):
                p = await self.scorer.score(symbol, features)
        except TimeoutError:
            self.metrics.ml_fallbacks.inc()
            return MlInput(None, version, True, f"timeout after {engine.params.ml.deadline_ms} ms")
        except Exception as exc:  # the port's contract is "a probability or a fallback"
            self.metrics.ml_fallbacks.inc()
            return MlInput(None, version, True, f"{type(exc).__name__}: {exc}")
        if not isinstance(p, float | int) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            self.metrics.ml_fallbacks.inc()
            return MlInput(None, version, True, f"invalid score {p!r}")
        return MlInput(float(p), version)

    def _observe(self, result: Mapping[str, Any], dry_run: bool, t0: float) -> None:
        self._latency[dry_run].observe(time.perf_counter() - t0)
        reason = result["reason"]
        self.metrics.decisions.labels(result["decision"], reason).inc()
        if result["decision"] == "skip":
            self.metrics.gate_skips.labels(reason).inc()
        for fired in result.get("rules_fired", ()):
            self.metrics.rules_fired.labels(fired["rule_id"]).inc()

    # ---- batch --------------------------------------------------------------------------------
    async def decide_batch(self, items: Sequence[DecideInput]) -> list[dict[str, Any] | ItemFailed]:
        """Independent decisions, `S3_BATCH_CONCURRENCY` at a time, answers in request order;
        an item that cannot be decided is reported as :class:`ItemFailed`, the others stand."""
        sem = asyncio.Semaphore(self.settings.batch_concurrency)

        async def one(item: DecideInput) -> dict[str, Any] | ItemFailed:
            async with sem:
                try:
                    return await self.decide(item)
                except (UnknownSymbol, DecideRefused, InfraError) as exc:
                    return ItemFailed(item.symbol, exc)
                except Exception as exc:  # items are independent: never fail the others
                    log.exception("batch item %s failed", item.symbol)
                    return ItemFailed(item.symbol, exc)

        return list(await asyncio.gather(*(one(i) for i in items)))

    # ---- replay -------------------------------------------------------------------------------
    async def replay(self, signal_id: str) -> dict[str, Any]:
        """Re-run a stored decision from its recorded inputs and decision context; nothing is
        written or emitted. The recorded ML answer is an input (a model may have changed)."""
        doc = await self.store.get("signals", signal_id)
        if doc is None:
            raise SignalNotFound(signal_id)
        engine = await self._engines.for_signal(signal_id, doc)
        override = (doc.get("override") or {}).get("reason")
        if override == Reason.LOCK_BUSY.value:
            out = Outcome().skip(Reason.LOCK_BUSY, str(doc.get("message")))
            result = _answer(out, engine, signal_id)
        else:
            symbol, market = str(doc["symbol"]), Market(doc["market"])
            side_hint = Side(doc["side_hint"]) if doc.get("side_hint") else None
            state, recorded = recorded_inputs(signal_id, doc)
            t0 = int(doc["t0"])
            result = await self._run(
                engine, signal_id, t0, symbol, market, side_hint, state, recorded
            )
            if override == Reason.DUPLICATE_DECISION.value and result["decision"] == "open":
                apply_override(result, Reason.DUPLICATE_DECISION, str(doc.get("message")))
        model_version = self.scorer.model_version
        return compare(
            signal_id, doc, result, engine, model_version=model_version, now_ms=self.clock.now_ms()
        )
