"""The children of one parent order at the venue: placed (record before send), sent (fenced
by the execution's lease, under `lock:pos:{symbol}` for one request at a time), polled,
resolved, cancelled; the venue's answers applied to their records, and their trades booked
through the one `FillBook` (ledgers per child and for the parent, over-fill checked).

A child is sent again only after the venue was asked for it by client order id — also a send we
deferred ourselves (lock busy, 429 on every attempt) — and, when an earlier attempt may have
reached the venue, only once the recv window since that attempt has passed.

:class:`ChildOrders` is the half of :class:`~s4_router.service_layer.execution.Execution` that
deals with children; the execution drives the machine and writes the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

from s4_router.adapters.exchange.base import (
    BookTop,
    DefinitiveError,
    ExchangeOrder,
    ExchangeTrade,
    InsufficientFunds,
    OrderNotFound,
    PlaceOrderRequest,
    PostOnlyRejected,
    RetryableError,
)
from s4_router.adapters.exchange.weight import urgent_lane
from s4_router.adapters.leases import Lease
from s4_router.adapters.orders_repo import ledger_of
from s4_router.domain.fills import FillLedger
from s4_router.domain.order import IllegalTransition, can_transition, reconcile_status
from s4_router.policies.model import ChildReport, Note, Place, RejectKind
from s4_router.policies.parent_machine import ParentMachine
from s4_router.service_layer.exec_deps import ExecDeps, child_record
from s4_router.service_layer.fill_book import fill_of
from s4_router.service_layer.venue_ops import Unresolved
from svckit import keys
from svckit.errors import DuplicateKey
from svckit.redisio import LockNotAcquired, hold_lock
from tradekit.enums import OrderRole, OrderStatus
from tradekit.instrument import Instrument
from tradekit.money import BPS, ZERO
from tradekit.orders import FillRecord, OrderRecord, StateChange

log = logging.getLogger(__name__)

S = OrderStatus
# What a step changes on a stored child record (the rest is written once, at insert).
CHILD_FIELDS = frozenset(
    {
        "status",
        "history",
        "message",
        "updated_ts",
        "venue_order_id",
        "filled_qty",
        "avg_price",
        "fee",
        "ts_ack",
        "ts_send",
    }
)


class ChildOrders:
    def __init__(
        self,
        deps: ExecDeps,
        *,
        parent: OrderRecord,
        children: dict[str, OrderRecord],
        machine: ParentMachine,
        inst: Instrument,
        fills: list[FillRecord] | None = None,
        book: BookTop | None = None,
        t_intake: float | None = None,
        parent_stored: bool = True,
        lease: Lease,
    ) -> None:
        """The whole execution's state (this half's and the driver's)."""
        self.d = deps
        self.machine = machine  # decides which children are still wanted
        # A fresh intent's parent is inserted by the first write of its first step, already
        # holding the allocation of its first child (one store write less before the send).
        self.stored = parent_stored
        self._initial_book = book
        self._lock = asyncio.Lock()
        self.finished = parent.status.is_terminal
        self.cancel_local = False
        # A parent created by this very request cannot have a cancel request stored yet.
        self._check_cancel_flag = t_intake is None
        self.lease = lease  # this execution's acquisition of its lease
        self.parent = parent
        self.children = children
        self.inst = inst
        self._last_book = book
        self._t_intake = t_intake
        self.events: list[Note] = []  # `router:events` entries, published after the step
        self._alerted: set[str] = set()
        self._fills_wait = 0
        # Children no attempt of which can have reached the venue (lock not acquired, 429 on
        # every attempt, allocated but never recorded): still asked for at the venue before a
        # send, but without waiting out the landing window.
        self.unsent: set[str] = set()
        self._dirty: set[str] = set()
        booked = fills or []
        self.parent_ledger = ledger_of(parent.qty, booked)
        self.fill_notional = sum((f.qty * f.price for f in booked), ZERO)
        # A venue fill took the order past its quantity: no new child goes out.
        self.overfilled = self.parent_ledger.filled > parent.qty
        self.ledgers: dict[str, FillLedger] = {}
        self.fees: dict[str, Decimal] = {}
        for cid, child in children.items():
            mine = [f for f in booked if f.client_order_id == cid]
            self.ledgers[cid] = ledger_of(child.qty, mine)
            self.fees[cid] = sum((f.fee for f in mine), ZERO)
        self.fills_booked = len(self.parent_ledger.seen)

    @property
    def client_order_id(self) -> str:
        return self.parent.client_order_id

    async def _persist_parent(self) -> None:
        """Write the parent (the execution's; the allocation of a child precedes its send)."""
        raise NotImplementedError

    # ---- children: place / poll / cancel ------------------------------------------------------
    def _request(self, child: OrderRecord) -> PlaceOrderRequest:
        return PlaceOrderRequest(
            market=child.market,
            symbol=child.symbol,
            side=child.side,
            type=child.type,
            qty=child.qty,
            client_order_id=child.client_order_id,
            price=child.price,
            time_in_force=child.time_in_force,
            post_only=child.post_only,
            reduce_only=child.reduce_only,
        )

    async def _place(self, p: Place) -> ChildReport | None:
        now = self.d.clock.now_ms()
        child = child_record(self.parent, p, venue=self.d.venue, ts=now, book=self._last_book)
        self.children[p.child_id] = child
        self.ledgers[p.child_id] = FillLedger(child.qty)
        self.fees[p.child_id] = ZERO
        # The allocation of child n is durable before the venue can hear of it.
        await self._persist_parent()
        try:
            await self.d.orders.add(child)
        except DuplicateKey:
            existing = await self.d.orders.get(p.child_id)
            if existing is None:
                raise
            self.children[p.child_id] = existing
            return await self._poll(existing)  # resolve-before-resend
        self.d.metrics.children.labels(p.role.value).inc()
        return await self._send(child)

    async def _send(self, child: OrderRecord) -> ChildReport | None:
        """Send a child nobody can have sent before (fresh, or proven absent at the venue)."""

        async def before_attempt(ts: int) -> None:
            # Fencing: only the lease holder sends (a task that lost it stops here).
            await self.d.leases.ensure(self.lease)
            if ts != child.ts_send:
                child.ts_send = ts
                await self._save_child(child)

        try:
            order = await self.d.ops.send(
                self._request(child),
                since_ms=child.created_ts,
                before_attempt=before_attempt,
                guard=self._pos_lock,
            )
        except PostOnlyRejected as exc:
            return await self._rejected(child, RejectKind.POST_ONLY, exc)
        except InsufficientFunds as exc:
            return await self._rejected(child, RejectKind.INSUFFICIENT_FUNDS, exc)
        except DefinitiveError as exc:
            return await self._rejected(child, RejectKind.OTHER, exc)
        except Unresolved as exc:
            if exc.sent_at_ms is None:
                # Lock busy or refused before processing every time (429s): nothing landed.
                # The next step asks the venue first, then sends.
                log.info("%s: send deferred: %s", child.client_order_id, exc)
                self.unsent.add(child.client_order_id)
                return None
            child.ts_send = exc.sent_at_ms
            if child.status is not S.AMBIGUOUS:
                await self._set_child(child, S.AMBIGUOUS, str(exc))
            else:
                await self._save_child(child)
            if child.client_order_id not in self._alerted:
                self._alerted.add(child.client_order_id)
                await self.d.publisher.alert(
                    "SUBMIT_UNRESOLVED",
                    f"{child.client_order_id}: venue outcome unknown, resolving from evidence",
                    data={"symbol": child.symbol, "client_order_id": child.client_order_id},
                )
            return ChildReport(child.client_order_id, S.AMBIGUOUS, child.filled_qty)
        if self._t_intake is not None:
            self.d.metrics.submit_latency.observe(self.d.clock.monotonic() - self._t_intake)
            self._t_intake = None
        return await self._apply(child, order)

    def _pos_lock(self) -> contextlib.AbstractAsyncContextManager[str]:
        """`lock:pos:{symbol}` around one venue request (never across a back-off)."""
        return hold_lock(
            self.d.redis,
            keys.lock_pos(self.parent.symbol),
            ttl_ms=keys.POS_LOCK_MAX_MS,
            wait_ms=self.d.lock_wait_ms,
            owner=self.d.owner,
            queue=self.d.pos_queue,
            # Waiting in this process's line is free; giving up is not (the next step asks
            # the venue for the child before sending it). Bounded so the lease, renewed
            # between steps, never lapses while waiting.
            queue_wait_ms=max(self.d.lock_wait_ms, self.d.leases.ttl_ms // 3),
        )

    async def _rejected(
        self, child: OrderRecord, kind: RejectKind, exc: DefinitiveError
    ) -> ChildReport:
        self.d.metrics.venue_errors.labels(type(exc).__name__).inc()
        await self._set_child(child, S.REJECTED, f"venue rejected: {exc}")
        return ChildReport(child.client_order_id, S.REJECTED, ZERO, kind, str(exc))

    async def _poll(self, child: OrderRecord) -> ChildReport | None:
        req = self._request(child)
        cid = child.client_order_id
        try:
            if child.status in (S.NEW, S.SUBMITTED, S.AMBIGUOUS):
                # Never acknowledged: resolve from venue evidence before anything else — also a
                # send we deferred ourselves (the venue is asked before every resend).
                window_open = cid not in self.unsent and self.d.ops.landing_window_open(
                    child.ts_send
                )
                # A send that may have reached the venue is watched in the urgent lane; one
                # we deferred ourselves (nothing left this process) waits for the budget like
                # the resend it precedes.
                lane = urgent_lane() if cid not in self.unsent else contextlib.nullcontext()
                with lane:
                    found = await self.d.ops.resolve(
                        req, since_ms=child.created_ts, with_trades=not window_open
                    )
                if found is not None:
                    self.unsent.discard(cid)
                    return await self._apply(child, found)
                if window_open:
                    return None  # absent so far, but an attempt could still land
                self.unsent.discard(cid)
                working = any(sl.state and sl.state.working == cid for sl in self.machine.s.slices)
                if working and not self.machine.s.cancel_requested:
                    return await self._send(child)  # provably absent: same id again
                return await self._absent(child)
            try:
                with urgent_lane():  # watching what is already out
                    order = await self.d.ops.fetch(child.market, child.symbol, cid)
            except OrderNotFound:
                with urgent_lane():  # watching what is already out
                    found = await self.d.ops.resolve(req, since_ms=child.created_ts)
                if found is None:
                    await self.d.publisher.alert(
                        "ORDER_VANISHED",
                        f"{cid} was acknowledged but the venue no longer has it",
                        severity="critical",
                        data={"symbol": child.symbol},
                    )
                    return await self._absent(child)
                order = found
        except RetryableError as exc:
            log.info("%s: poll deferred: %s", cid, exc)
            return None
        return await self._apply(child, order)

    async def _absent(self, child: OrderRecord) -> ChildReport:
        """Venue evidence (order query and trades) says this child never existed there."""
        await self._set_child(
            child, S.EXPIRED, "not at the venue (query by client order id and trades): never sent"
        )
        return ChildReport(child.client_order_id, S.EXPIRED, ZERO)

    async def _cancel(self, child_id: str) -> ChildReport | None:
        child = self.children.get(child_id)
        if child is None:
            return None
        if child.status.is_terminal:
            return ChildReport(child_id, child.status, child.filled_qty)
        if child.status is not S.PENDING_CANCEL and can_transition(child.status, S.PENDING_CANCEL):
            await self._set_child(child, S.PENDING_CANCEL, "cancel sent")
        try:
            order = await self.d.ops.cancel(
                child.market, child.symbol, child_id, guard=self._pos_lock
            )
            if order is None:
                acked = child.ts_ack is not None or child.client_order_id in self.unsent
                window_open = not acked and self.d.ops.landing_window_open(child.ts_send)
                with urgent_lane():  # watching what is already out
                    order = await self.d.ops.resolve(
                        self._request(child), since_ms=child.created_ts, with_trades=not window_open
                    )
                if order is None:
                    if window_open:
                        return None  # it may still land: the machine asks again later
                    return await self._absent(child)
        except (LockNotAcquired, RetryableError) as exc:
            log.info("%s: cancel deferred: %s", child_id, exc)
            return None  # the machine asks again after cancel_retry_ms
        return await self._apply(child, order)

    # ---- venue truth → records ----------------------------------------------------------------
    async def _apply(self, child: OrderRecord, order: ExchangeOrder) -> ChildReport:
        now = self.d.clock.now_ms()
        cid = child.client_order_id
        was_terminal = child.status.is_terminal
        child.venue_order_id = child.venue_order_id or order.venue_order_id
        if child.ts_ack is None:
            child.ts_ack = now
        # The venue's truth is recorded as is; the machine never hears of more than the child's
        # quantity (an overfill is booked, alerted and stops the execution: FillBook).
        venue_filled = order.filled_qty
        filled = min(venue_filled, child.qty)
        ledger = self.ledgers.setdefault(cid, FillLedger(child.qty))
        if ledger.filled < venue_filled:
            trades = list(order.trades)
            if sum((t.qty for t in trades), ZERO) < filled:
                try:
                    with urgent_lane():  # watching what is already out
                        trades = await self.d.ops.trades_of(
                            child.market,
                            child.symbol,
                            client_order_id=cid,
                            since_ms=child.created_ts,
                        )
                except RetryableError:
                    pass  # booked on a later step; the machine already counts venue qty
            for t in sorted(trades, key=lambda t: (t.ts, t.trade_id)):
                await self._book_fill(child, t)
        if venue_filled > child.qty:
            self.overfilled = True
        try:
            status = reconcile_status(child.status, order.status)
        except IllegalTransition as exc:
            await self.d.publisher.alert(
                "ORDER_STATUS_CONFLICT", f"{cid}: {exc}", data={"symbol": child.symbol}
            )
            status = child.status
        if status is not child.status:
            child.history.append(StateChange(status=status, ts=now))
            child.status = status
        child.filled_qty = venue_filled
        child.avg_price = order.avg_price
        child.fee = self.fees.get(cid, ZERO)
        child.updated_ts = now
        await self._save_child(child)
        if child.status.is_terminal and not was_terminal:
            if child.role in (OrderRole.MAKER, OrderRole.CHASE):
                await self.d.quality.maker_child_done(now, qty=child.qty, filled=filled)
            self.events.append(
                Note(
                    "CHILD_DONE",
                    {
                        "child": cid,
                        "role": child.role.value if child.role else None,
                        "status": child.status.value,
                        "qty": str(child.qty),
                        "filled": str(filled),
                    },
                )
            )
        return ChildReport(cid, order.status, filled)

    async def _book_fill(self, child: OrderRecord, t: ExchangeTrade) -> None:
        key = (self.d.venue, t.venue_order_id, t.trade_id)
        ledger = self.ledgers[child.client_order_id]
        if key in ledger.seen and key in self.parent_ledger.seen:
            return
        arrival = self.parent.arrival_mid or child.mid_at_send
        slip = (
            ((t.price - arrival) / arrival * BPS * child.side.sign).quantize(Decimal("0.001"))
            if arrival
            else None
        )
        fill = fill_of(
            t,
            venue=self.d.venue,
            cid=child.client_order_id,
            parent=self.client_order_id,
            market=child.market,
            symbol=child.symbol,
            side=child.side,
            mid_at_send=child.mid_at_send,
            book_top3=child.book_top3,
            slippage_bps=slip,
            ts_intent=self.parent.created_ts,
            ts_send=child.ts_send,
            ts_ack=child.ts_ack,
            arrival_mid=self.parent.arrival_mid,
            role=child.role,
            slice_index=child.slice_index,
        )
        booked = await self.d.fills.book(fill, ledger, self.parent_ledger)
        self.fill_notional += t.qty * t.price
        self.fees[child.client_order_id] = self.fees.get(child.client_order_id, ZERO) + t.fee
        if booked.over:
            self.overfilled = True
        if not booked.stored:
            return
        self.fills_booked += 1
        log.info(
            "fill %s %s %s @ %s (%s), parent filled %s / %s",
            child.client_order_id,
            child.side.value,
            t.qty,
            t.price,
            t.liquidity,
            self.parent_ledger.filled,
            self.parent.qty,
        )
        fee_usdt = t.fee * t.price if t.fee_asset == self.inst.base_asset else t.fee
        self.d.metrics.fees.inc(float(fee_usdt))
        if slip is not None:
            self.d.metrics.slippage.observe(float(slip))
        self.d.quality.fill(liquidity=t.liquidity, qty=t.qty)

    # ---- persistence --------------------------------------------------------------------------
    async def _set_child(self, child: OrderRecord, status: OrderStatus, reason: str) -> None:
        now = self.d.clock.now_ms()
        if status is not child.status:
            child.history.append(StateChange(status=status, ts=now, reason=reason))
            child.status = status
        child.message = reason
        child.updated_ts = now
        await self._save_child(child)

    async def _save_child(self, child: OrderRecord) -> None:
        # Dirty until stored: a store hiccup must not leave the record behind the venue.
        self._dirty.add(child.client_order_id)
        await self.d.orders.save(child, CHILD_FIELDS)
        self._dirty.discard(child.client_order_id)

    async def _save_dirty(self) -> None:
        for cid in list(self._dirty):
            child = self.children.get(cid)
            if child is None:
                self._dirty.discard(cid)
            else:
                await self._save_child(child)
