"""The order router's one handler: REST `POST /orders` and the `orders:intent` consumer group
both call :meth:`OrderRouter.submit`.

Exactly-once rests on three things, in this order of authority:
1. the unique index on `orders.client_order_id` in the store (the durable guard: the parent
   order record is inserted *before* anything is sent);
2. deterministic child ids `{client_order_id}-E{n}`: a retry resends the same id, so the venue
   itself refuses a second copy of an open order;
3. after any submit whose outcome is unknown (timeout, dropped ack, 5xx) we ask the venue for
   the client order id before sending again — a filled market order frees its id at Binance, so
   a blind resend could trade twice.
`idem:order:{id}` in Redis is the fast path in front of (1).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    BookTop,
    DefinitiveError,
    DuplicateOrder,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    OrderNotFound,
    PlaceOrderRequest,
    RateLimited,
    RetryableError,
)
from s4_router.domain.order import check_transition
from s4_router.metrics import RouterMetrics
from svckit import keys
from svckit.clock import Clock
from svckit.errors import DuplicateKey
from svckit.redisio import RedisClient, claim_for_execution, new_token, xadd_json
from svckit.store.base import DocumentStore, Query
from tradekit.enums import OrderStatus, OrderType, RequestResult
from tradekit.errors import InvalidIntent
from tradekit.events import Alert, OrderExecuted, RouterEvent
from tradekit.ids import child_order_id
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, MarketPolicy, OrderIntent
from tradekit.money import ZERO
from tradekit.orders import FillRecord, OrderRecord, OrderResponse, StateChange

log = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 4
RESOLVE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    response: OrderResponse
    http_status: int = 200


class OrderRouter:
    def __init__(
        self,
        *,
        store: DocumentStore,
        redis: RedisClient,
        exchange: ExchangePort,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        metrics: RouterMetrics,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.exchange = exchange
        self.instruments = dict(instruments)
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"s4:{socket.gethostname()}:{os.getpid()}"

    # ------------------------------------------------------------------ intake
    async def submit(self, intent: OrderIntent, *, source: str) -> Outcome:
        """Validate, deduplicate, execute and persist one intent."""
        existing = await self.store.find_one("orders", {"client_order_id": intent.client_order_id})
        if existing is not None:
            return self._duplicate(existing, source)

        try:
            inst, qty = self._validate(intent)
        except InvalidIntent as exc:
            self.metrics.intents.labels(source, "invalid").inc()
            return Outcome(self._fail(intent, str(exc)), 422)

        now = self.clock.now_ms()
        parent = OrderRecord(
            client_order_id=intent.client_order_id,
            intent_id=intent.intent_id,
            venue=self.exchange.venue,
            market=intent.market,
            symbol=intent.symbol,
            side=intent.side,
            type=OrderType.MARKET,
            qty=qty,
            reduce_only=intent.reduce_only,
            status=OrderStatus.NEW,
            history=[StateChange(status=OrderStatus.NEW, ts=now, reason=f"intake:{source}")],
            intent=intent.model_dump(mode="json"),
            created_ts=intent.created_ts or now,
            updated_ts=now,
        )
        try:
            await self.store.insert(
                "orders", {"_key": intent.client_order_id, **parent.model_dump(mode="json")}
            )
        except DuplicateKey:
            again = await self.store.find_one("orders", {"client_order_id": intent.client_order_id})
            if again is not None:
                return self._duplicate(again, source)
            raise
        # Fast-path marker for other replicas; the store insert above is the real guard.
        await claim_for_execution(
            self.redis,
            keys.idem_order(intent.client_order_id),
            new_token(self.owner),
            keys.IDEM_TTL_S,
        )
        outcome = await self._execute(parent, inst, intent)
        self.metrics.intents.labels(source, outcome.response.result.value).inc()
        return outcome

    def _validate(self, intent: OrderIntent) -> tuple[Instrument, Decimal]:
        inst = self.instruments.get(intent.symbol)
        if inst is None:
            raise InvalidIntent(f"symbol: unknown symbol {intent.symbol!r}", field="symbol")
        if intent.market not in inst.markets:
            raise InvalidIntent(f"market: {intent.symbol} is not traded on {intent.market}")
        if intent.needs_protection:
            # Until protective orders land, refusing beats executing with protection dropped.
            raise InvalidIntent(
                "sl/tp brackets and OCO are not supported by this router version; "
                "intent refused rather than executed without its protection",
                field="exec_policy" if intent.sl is None and intent.tp is None else "sl",
            )
        if not isinstance(intent.exec_policy, MarketPolicy | MakerTakerPolicy) or (
            isinstance(intent.exec_policy, MakerTakerPolicy) and intent.exec_policy.twap
        ):
            raise InvalidIntent(
                f"exec_policy: {intent.exec_policy.type} with slicing is not supported yet",
                field="exec_policy",
            )
        qty = inst.round_qty(intent.qty, "down")
        if intent.ref_price is not None:
            inst.check_notional(qty, intent.ref_price)
        return inst, qty

    def _duplicate(self, doc: dict[str, Any], source: str) -> Outcome:
        self.metrics.duplicates.inc()
        self.metrics.intents.labels(source, "duplicate").inc()
        status = OrderStatus(doc["status"])
        ok = status not in (OrderStatus.REJECTED,)
        return Outcome(
            OrderResponse(
                result=RequestResult.OK if ok else RequestResult.FAIL,
                order_ids=[doc["client_order_id"]],
                message="duplicate client_order_id: existing order returned, nothing sent",
                client_order_id=doc["client_order_id"],
                status=status,
                duplicate=True,
            )
        )

    def _fail(self, intent: OrderIntent, message: str) -> OrderResponse:
        return OrderResponse(
            result=RequestResult.FAIL,
            message=message,
            client_order_id=intent.client_order_id,
        )

    # --------------------------------------------------------------- execution
    async def _execute(self, parent: OrderRecord, inst: Instrument, intent: OrderIntent) -> Outcome:
        t0 = self.clock.monotonic()
        book = await self.exchange.fetch_book(intent.market, intent.symbol, depth=3)
        if intent.ref_price is None:
            try:
                inst.check_notional(parent.qty, book.mid)
            except InvalidIntent as exc:
                await self._set_status(parent, OrderStatus.REJECTED, str(exc))
                return Outcome(self._fail(intent, str(exc)), 422)
        if isinstance(intent.exec_policy, MakerTakerPolicy):
            await self._event("POLICY_DEGRADED", parent, {
                "requested": "MAKER_TAKER", "executed": "MARKET",
                "why": "Maker→Taker not yet available in this router version",
            })  # fmt: skip
        child_id = child_order_id(parent.client_order_id, 1)
        now = self.clock.now_ms()
        child = parent.model_copy(
            update={
                "client_order_id": child_id,
                "parent_client_order_id": parent.client_order_id,
                "intent": None,
                "history": [StateChange(status=OrderStatus.NEW, ts=now)],
                "created_ts": now,
                "updated_ts": now,
            }
        )
        try:
            await self.store.insert("orders", {"_key": child_id, **child.model_dump(mode="json")})
        except DuplicateKey:
            pass  # recovery path: the child exists already; resolve it from the venue below
        await self._set_status(parent, OrderStatus.SUBMITTED)
        await self._set_status(child, OrderStatus.SUBMITTED)
        req = PlaceOrderRequest(
            market=intent.market,
            symbol=intent.symbol,
            side=intent.side,
            type=OrderType.MARKET,
            qty=parent.qty,
            client_order_id=child_id,
            reduce_only=intent.reduce_only,
        )
        ts_send = self.clock.now_ms()
        try:
            venue_order = await self._send_exactly_once(req)
        except DefinitiveError as exc:
            self.metrics.venue_errors.labels(type(exc).__name__).inc()
            await self._set_status(child, OrderStatus.REJECTED, str(exc))
            await self._set_status(parent, OrderStatus.REJECTED, str(exc))
            return Outcome(self._fail(intent, f"venue rejected: {exc}"))
        except (RetryableError, AmbiguousSubmit) as exc:
            # Unresolved: leave AMBIGUOUS for reconciliation; never assume rejected.
            await self._set_status(child, OrderStatus.AMBIGUOUS, str(exc))
            await self._alert("SUBMIT_UNRESOLVED", f"{child_id}: {exc}", parent.symbol)
            return Outcome(
                OrderResponse(
                    result=RequestResult.FAIL,
                    order_ids=[parent.client_order_id],
                    message=f"venue outcome unknown, reconciliation pending: {exc}",
                    client_order_id=parent.client_order_id,
                    status=OrderStatus.AMBIGUOUS,
                ),
                503,
            )
        self.metrics.submit_latency.observe(self.clock.monotonic() - t0)
        ts_ack = self.clock.now_ms()
        trades = list(venue_order.trades)
        if not trades and venue_order.filled_qty > 0:
            trades = [
                t
                for t in await self.exchange.fetch_my_trades(intent.market, intent.symbol)
                if t.venue_order_id == venue_order.venue_order_id
            ]
        filled, notional, fee = await self._record_fills(
            trades, child, intent, book, ts_send=ts_send, ts_ack=ts_ack
        )
        final = venue_order.status
        avg = (notional / filled) if filled > 0 else None
        await self._set_status(
            child, final, venue_order_id=venue_order.venue_order_id,
            filled_qty=filled, avg_price=avg, fee=fee,
        )  # fmt: skip
        await self._set_status(parent, final, filled_qty=filled, avg_price=avg, fee=fee)
        await xadd_json(
            self.redis,
            keys.ORDERS_EXECUTED,
            OrderExecuted(
                client_order_id=parent.client_order_id,
                intent_id=parent.intent_id,
                market=parent.market,
                symbol=parent.symbol,
                side=parent.side,
                status=final,
                qty=parent.qty,
                filled_qty=filled,
                avg_price=avg,
                fee=fee,
                fills=len(trades),
                ts=self.clock.now_ms(),
            ).model_dump(mode="json"),
        )
        return Outcome(
            OrderResponse(
                result=RequestResult.OK,
                order_ids=[parent.client_order_id, child_id],
                client_order_id=parent.client_order_id,
                status=final,
                message=(
                    "executed as MARKET (Maker→Taker not yet available)"
                    if isinstance(intent.exec_policy, MakerTakerPolicy)
                    else None
                ),
            )
        )

    async def _send_exactly_once(self, req: PlaceOrderRequest) -> ExchangeOrder:
        """Send `req`, retrying only with the same client order id and only after asking the
        venue whether an earlier attempt landed."""
        last: Exception | None = None
        for attempt in range(MAX_SEND_ATTEMPTS):
            if attempt:
                found = await self._resolve(req)
                if found is not None:
                    return found
            try:
                return await self.exchange.place_order(req)
            except DuplicateOrder:
                found = await self._resolve(req)
                if found is not None:
                    return found
                raise
            except RateLimited as exc:
                self.metrics.venue_errors.labels("RateLimited").inc()
                last = exc
                await asyncio.sleep(min(exc.retry_after or 0.05 * 2**attempt, 2.0))
            except (RetryableError, AmbiguousSubmit) as exc:
                self.metrics.venue_errors.labels(type(exc).__name__).inc()
                if isinstance(exc, AmbiguousSubmit):
                    self.metrics.ambiguous.inc()
                last = exc
                await asyncio.sleep(0.02 * 2**attempt)
        assert last is not None
        found = await self._resolve(req)
        if found is not None:
            return found
        raise last

    async def _resolve(self, req: PlaceOrderRequest) -> ExchangeOrder | None:
        """Venue evidence for an earlier attempt: the order by client id, or None if absent."""
        for attempt in range(RESOLVE_ATTEMPTS):
            try:
                return await self.exchange.fetch_order(
                    req.market, req.symbol, client_order_id=req.client_order_id
                )
            except OrderNotFound:
                return None
            except RetryableError:
                await asyncio.sleep(0.02 * 2**attempt)
        raise AmbiguousSubmit(f"could not resolve {req.client_order_id} from the venue")

    async def _record_fills(
        self,
        trades: list[ExchangeTrade],
        child: OrderRecord,
        intent: OrderIntent,
        book: BookTop,
        *,
        ts_send: int,
        ts_ack: int,
    ) -> tuple[Decimal, Decimal, Decimal]:
        filled = notional = fee = ZERO
        top3 = {
            "bids": [(p, q) for p, q in book.bids[:3]],
            "asks": [(p, q) for p, q in book.asks[:3]],
        }
        mid = book.mid
        for t in trades:
            if filled + t.qty > child.qty:
                # Never book more than the order's quantity (a duplicate report under a new id).
                await self._alert("OVERFILL_REPORT", f"{child.client_order_id}: {t}", child.symbol)
                continue
            slip = (t.price - mid) / mid * 10_000 * intent.side.sign
            fill = FillRecord(
                venue=self.exchange.venue,
                order_id=t.venue_order_id,
                trade_id=t.trade_id,
                client_order_id=child.client_order_id,
                parent_client_order_id=child.parent_client_order_id,
                market=intent.market,
                symbol=intent.symbol,
                side=intent.side,
                price=t.price,
                qty=t.qty,
                fee=t.fee,
                fee_asset=t.fee_asset,
                liquidity=t.liquidity,
                mid_at_send=mid,
                book_top3=top3,
                slippage_bps=slip.quantize(Decimal("0.001")),
                ts_intent=intent.created_ts,
                ts_send=ts_send,
                ts_ack=ts_ack,
                ts_fill=t.ts,
            )
            try:
                await self.store.insert("fills", fill.model_dump(mode="json"))
            except DuplicateKey:
                continue  # the same (venue, order_id, trade_id) reported twice
            filled += t.qty
            notional += t.qty * t.price
            fee += t.fee
            self.metrics.fills.labels(t.liquidity.value).inc()
            self.metrics.fees.inc(float(t.fee))
            self.metrics.slippage.observe(float(slip))
        return filled, notional, fee

    # ----------------------------------------------------------------- helpers
    async def _set_status(
        self, order: OrderRecord, status: OrderStatus, reason: str | None = None, **fields: Any
    ) -> None:
        if order.status != status:
            check_transition(order.status, status)
            order.history.append(StateChange(status=status, ts=self.clock.now_ms(), reason=reason))
        order.status = status
        order.updated_ts = self.clock.now_ms()
        if reason:
            order.message = reason
        for k, v in fields.items():
            setattr(order, k, v)
        patch = order.model_dump(
            mode="json",
            include={"status", "history", "updated_ts", "message", *fields.keys()},
        )
        await self.store.update("orders", order.client_order_id, patch)

    async def _event(self, name: str, order: OrderRecord, data: dict[str, Any]) -> None:
        ev = RouterEvent(
            event=name,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            ts=self.clock.now_ms(),
            data=data,
        )
        await xadd_json(self.redis, keys.ROUTER_EVENTS, ev.model_dump(mode="json"))

    async def _alert(self, kind: str, message: str, symbol: str | None = None) -> None:
        log.warning("alert %s: %s", kind, message)
        alert = Alert(
            source="s4-router",
            kind=kind,
            message=message,
            ts=self.clock.now_ms(),
            data={"symbol": symbol} if symbol else {},
        )
        await xadd_json(self.redis, keys.ALERTS, alert.model_dump(mode="json"))

    # ------------------------------------------------------------ cancel / get
    async def get(self, client_order_id: str) -> dict[str, Any] | None:
        order = await self.store.find_one("orders", {"client_order_id": client_order_id})
        if order is None:
            return None
        children = await self.store.find(
            "orders",
            Query(where={"parent_client_order_id": client_order_id}, sort=[("created_ts", "asc")]),
        )
        fills = await self.store.find(
            "fills",
            Query(where={"parent_client_order_id": client_order_id}, sort=[("ts_fill", "asc")]),
        )
        if not fills:
            fills = await self.store.find(
                "fills", Query(where={"client_order_id": client_order_id})
            )
        return {
            "order": strip(order),
            "children": [strip(c) for c in children],
            "fills": [strip(f) for f in fills],
        }

    async def cancel(
        self, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Outcome:
        where = (
            {"client_order_id": client_order_id}
            if client_order_id
            else {"venue_order_id": order_id}
        )
        doc = await self.store.find_one("orders", where)
        if doc is None:
            ident = client_order_id or order_id
            return Outcome(
                OrderResponse(result=RequestResult.FAIL, message=f"unknown order {ident!r}"), 404
            )
        order = OrderRecord.model_validate({k: v for k, v in doc.items() if k != "_key"})
        targets = [order]
        if order.parent_client_order_id is None:
            kids = await self.store.find(
                "orders", Query(where={"parent_client_order_id": order.client_order_id})
            )
            targets = [
                OrderRecord.model_validate({k: v for k, v in d.items() if k != "_key"})
                for d in kids
            ]
        live = [t for t in targets if not t.status.is_terminal and t.status != OrderStatus.NEW]
        if not live and order.status.is_terminal:
            return Outcome(
                OrderResponse(
                    result=RequestResult.FAIL,
                    order_ids=[order.client_order_id],
                    client_order_id=order.client_order_id,
                    status=order.status,
                    message=f"order already {order.status.value}",
                ),
                409,
            )
        cancelled: list[str] = []
        for t in live:
            try:
                res = await self.exchange.cancel_order(
                    t.market, t.symbol, client_order_id=t.client_order_id
                )
            except OrderNotFound:
                continue
            if t.status != OrderStatus.PENDING_CANCEL and t.status != res.status:
                await self._set_status(t, res.status, "cancel requested")
            cancelled.append(t.client_order_id)
        if order.parent_client_order_id is None and not order.status.is_terminal:
            await self._set_status(order, OrderStatus.CANCELED, "cancel requested")
        return Outcome(
            OrderResponse(
                result=RequestResult.OK,
                order_ids=[order.client_order_id, *cancelled],
                client_order_id=order.client_order_id,
                status=OrderStatus.CANCELED,
            )
        )


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop store-internal fields (`_key`, `_id`, `_rev`)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}
