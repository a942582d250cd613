"""The intake's recorded refusals (steps 3 and 4 of :mod:`.router`): the gates a new entry
must pass (the overfill halt of its symbol, the circuit breaker, the clock skew), and the
REJECTED parent record, `ENTRY_REFUSED` event and rate-limited alert every refusal leaves, so
that the other path's copy of the same intent cannot execute it later."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.policies.circuit_breaker import CircuitBreaker
from s4_router.policies.clock_guard import ClockSkewGuard
from s4_router.policies.quality_alarms import Cooldown
from s4_router.service_layer.exec_deps import ExecDeps
from s4_router.service_layer.resends import Resends
from svckit import keys
from svckit.errors import DuplicateKey
from tradekit.enums import OrderRole, OrderStatus, OrderType
from tradekit.intents import OrderIntent
from tradekit.orders import OrderRecord, StateChange

S = OrderStatus
REFUSAL_ALERT_EVERY_MS = 60_000
HALT_CHECK_MS = 1_000


def parent_record(
    intent: OrderIntent,
    qty: Decimal,
    otype: OrderType,
    *,
    venue: str,
    now: int,
    source: str,
    **kw: Any,
) -> OrderRecord:
    """The parent record of `intent` as its intake first writes it (NEW)."""
    return OrderRecord(
        client_order_id=intent.client_order_id,
        intent_id=intent.intent_id,
        venue=venue,
        market=intent.market,
        symbol=intent.symbol,
        side=intent.side,
        type=otype,
        qty=qty,
        reduce_only=intent.reduce_only,
        status=S.NEW,
        history=[StateChange(status=S.NEW, ts=now, reason=f"intake:{source}")],
        intent=intent.model_dump(mode="json"),
        created_ts=intent.created_ts or now,
        updated_ts=now,
        role=OrderRole.PARENT,
        **kw,
    )


@dataclass(kw_only=True, eq=False)
class Refusals:
    d: ExecDeps  # the store, Redis, clock, metrics, publisher and venue name
    breaker: CircuitBreaker
    skew: ClockSkewGuard
    resends: Resends
    _refusal_alerted: dict[str, Cooldown] = field(default_factory=dict, init=False)
    _halted: dict[str, tuple[int, str | None]] = field(default_factory=dict, init=False)

    async def gate(self, intent: OrderIntent) -> tuple[str, str] | None:
        """Why a new entry may not go now (None: it may). Reduce-only always passes."""
        if intent.reduce_only:
            return None
        now = self.d.clock.now_ms()
        # The overfill halt, read from Redis at most once a second per replica.
        cached = self._halted.get(intent.symbol)
        if cached is None or now - cached[0] >= HALT_CHECK_MS:
            value = await self.d.redis.get(keys.halt_entries(intent.symbol))
            cached = self._halted[intent.symbol] = (now, str(value) if value is not None else None)
        halt = cached[1]
        if halt is not None:
            return "entries_halted", (
                f"new entries on {intent.symbol} halted after an overfill ({halt}); an operator "
                f"clears {keys.halt_entries(intent.symbol)} once positions are checked"
            )
        if not self.breaker.allows_entry(now):
            return "circuit_open", (
                "circuit breaker OPEN (venue 5xx/429 rate): new entries refused, nothing sent; "
                "reduce-only orders and cancels still pass"
            )
        if not self.skew.ok:
            return "clock_skew", (
                f"clock skew {self.skew.skew_ms} ms vs the venue exceeds "
                f"{self.skew.max_skew_ms} ms: new entries stopped until it recovers"
            )
        return None

    async def refuse(
        self,
        intent: OrderIntent,
        qty: Decimal,
        reason: str,
        message: str,
        *,
        source: str,
        kind: Disposition = Disposition.UNAVAILABLE,
    ) -> Outcome:
        now = self.d.clock.now_ms()
        coid = intent.client_order_id
        record = parent_record(
            intent,
            qty,
            OrderType.MARKET,
            venue=self.d.venue,
            now=now,
            source=source,
            message=message,
        )
        record.status = S.REJECTED
        record.history.append(StateChange(status=S.REJECTED, ts=now, reason=reason))
        try:
            await self.d.orders.add(record)
        except DuplicateKey:
            return await self.resends.stored_or_busy(intent, source)
        self.d.metrics.refused.labels(reason).inc()
        self.d.metrics.intents.labels(source, "refused").inc()
        await self.d.publisher.event(
            "ENTRY_REFUSED",
            client_order_id=coid,
            symbol=intent.symbol,
            data={"reason": reason, "message": message},
        )
        # One alert per reason per minute: a breaker storm must not bury the alerts stream
        # (every refusal is still on router:events and in the store).
        cooldown = self._refusal_alerted.setdefault(reason, Cooldown(REFUSAL_ALERT_EVERY_MS))
        if cooldown.ready(self.d.clock.now_ms()):
            await self.d.publisher.alert(
                "ENTRY_REFUSED",
                f"{coid}: {message}",
                data={"symbol": intent.symbol, "reason": reason},
            )
        return Outcome.of(kind, coid, message=message, status=S.REJECTED, reason=reason)
