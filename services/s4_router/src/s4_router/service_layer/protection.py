"""Protective orders: runs the pure machines (`policies.brackets` for FUT SL/TP,
`policies.oco_guardian` for SPOT OCO) against the venue and owns the persistence of their state.
SPOT OCO with `S4_OCO_GUARDIAN=false` uses the venue's native OCO list instead (machine
`OCO_NATIVE`: list `{parent}-E60`, legs E61 take profit / E62 stop, looked up by the list client
id before any resend, polled with `fetch_order_list`); a venue without lists falls back to the
guardian (`OCO_GUARDIAN_FALLBACK`, legs from E63).

One protection per parent intent, stored in `strategy_events` as the document
`protection:{client_order_id}` (`kind = "PROTECTION"`, `active` until the machine is final) and
written *before* anything it asks for is sent. Protective orders are also ordinary child
records in `orders` (`{client_order_id}-E{n}`, n from `FIRST_PROTECTIVE_CHILD`, roles
STOP_LOSS / TAKE_PROFIT / OCO_ABOVE / OCO_BELOW, `link_group` = the parent), so reconciliation
knows them and `GET /orders/{id}` shows them; their executions are booked in `fills`.

Exactly-once, as for entry children: the id is allocated and persisted first; an unanswered
send is resolved by querying the same id (never resent under a new one) and resent with the same
id only once the venue's recvWindow has passed without a trace of it.

Driving: the execution manager's step hook (`on_entry`) pushes entry fills the moment they are
booked, so the stop follows the fill within the same step; a background loop (`run`) makes one
*batched round* every `S4_PROTECTION_POLL_MS` and steps the protections a venue execution report
names in between. A restart re-arms every active protection from the store and the venue
(`recover`). Nothing here consults the circuit breaker: protective placements and cancels only
ever reduce risk and always pass (and take the urgent lane of the request-weight budget).

Request weight: a round asks the venue once per symbol, not once per protective order — the
open algo orders of every symbol with live brackets, the open spot orders of every symbol with
live guardian / native OCO legs, and (every `S4_PROTECTION_POSITION_POLL_MS`) one positions call
for all bracketed symbols — and fans the answers out to every protection of the account. An
order still open and unchanged in the snapshot costs nothing more; only an order that left the
open list (filled, triggered, cancelled, or sent after the snapshot) is queried by its id. With
50 live brackets on a symbol the steady cost stays that of one (`tests/bench/bench_s4_weight.py`).
The guardian's local legs are checked against one venue book per symbol per round, and between
rounds every `LOCAL_PRICE_MS` against the published `mkt:depth` when fresh (no venue call),
so a local stop follows the market-data feed, not the poll period. A round whose
snapshot could not be fetched skips the per-order polling of that symbol (the next round
retries) rather than multiplying the calls when the venue is already pushing back.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    BookTop,
    ConditionalOrder,
    DefinitiveError,
    DuplicateOrder,
    ExchangeError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    OcoOrderList,
    OrderNotFound,
    PlaceOrderRequest,
    ProtectionUnsupported,
    RetryableError,
)
from s4_router.adapters.leases import Lease, Leases
from s4_router.metrics import RouterMetrics
from s4_router.policies import brackets as br
from s4_router.policies import oco_guardian as og
from s4_router.service_layer.book_source import BookSource
from s4_router.service_layer.fill_book import FillBook, ledger_for
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.venue_ops import Unresolved, VenueOps
from svckit.clock import Clock
from svckit.errors import DuplicateKey
from svckit.store.base import DocumentStore, Query
from tradekit.enums import Liquidity, Market, OrderRole, OrderStatus, OrderType, Side
from tradekit.ids import parent_of
from tradekit.instrument import Instrument, round_to_increment
from tradekit.intents import OcoPolicy, OrderIntent
from tradekit.money import ZERO
from tradekit.orders import FillRecord, OrderRecord, StateChange

log = logging.getLogger(__name__)

S = OrderStatus
KIND = "PROTECTION"
# Entry children count up from E1; protective orders from here (ids stay ≤ E99, the venue's
# 36-character limit). An entry never comes close to 60 children (≤ 4 slices × a few retries).
FIRST_PROTECTIVE_CHILD = 60
MAX_CHILD = 99
# Between batched rounds the guardians' local legs are checked against the *published* book
# this often (no venue call, no weight): a local stop reacts to the feed, not to the poll.
LOCAL_PRICE_MS = 100
PROTECTIVE_ROLES = frozenset(
    {OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT, OrderRole.OCO_ABOVE, OrderRole.OCO_BELOW}
)
_ALGO_STATUS = {
    "NEW": S.ACCEPTED,
    "TRIGGERED": S.ACCEPTED,  # the market order is on its way: still working
    "CANCELED": S.CANCELED,
    "EXPIRED": S.EXPIRED,
    "REJECTED": S.REJECTED,
}


def doc_key(client_order_id: str) -> str:
    return f"protection:{client_order_id}"


def is_protective(doc: Mapping[str, Any]) -> bool:
    role = doc.get("role")
    return role is not None and OrderRole(role) in PROTECTIVE_ROLES


@dataclass
class Protection:
    coid: str
    market: Market
    symbol: str
    side: Side  # entry side
    inst: Instrument
    intent: dict[str, Any]
    brackets: br.Brackets | None = None
    guardian: og.OcoGuardian | None = None
    native: dict[str, Any] | None = None  # a venue OCO list (S4_OCO_GUARDIAN=false)
    entry_done: bool = False
    entry_filled: Decimal = ZERO
    sent: dict[str, int] = field(default_factory=dict)  # cid -> last send attempt (ms)
    observed: dict[str, int] = field(default_factory=dict)  # timings beyond the machines'
    active: bool = True
    created_ts: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # In memory only: when the entry was seen done (a positions snapshot taken before that
    # cannot show its position), and the last document written (unchanged rounds write nothing).
    entry_done_seq: int | None = None
    persisted: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        if self.brackets is not None:
            return self.brackets.state in (br.BracketState.CLOSED, br.BracketState.FAILED)
        if self.guardian is not None:
            return self.guardian.state.is_final
        if self.native is not None:
            return self.native["status"] in ("ALL_DONE", "FAILED")
        return False


@dataclass
class Snapshot:
    """What one batched round learnt about one symbol (None: not asked, or not answered)."""

    conditionals: dict[str, ConditionalOrder] | None = None  # open FUT algo orders by client id
    conditionals_failed: bool = False
    spot_orders: dict[str, ExchangeOrder] | None = None  # open SPOT orders by client id
    spot_failed: bool = False
    position: Decimal | None = None  # FUT position qty (only on a positions round)
    position_seq: int = 0  # sequence number taken just before the positions call
    book: BookTop | None = None  # SPOT book for the guardians' local legs (one per round)
    book_failed: bool = False


class ProtectionService:
    def __init__(
        self,
        *,
        store: DocumentStore,
        exchange: ExchangePort,
        ops: VenueOps,
        clock: Clock,
        metrics: RouterMetrics,
        publisher: Publisher,
        leases: Leases,
        fills: FillBook,
        instruments: Mapping[str, Instrument],
        working_type: str = "MARK_PRICE",
        poll_ms: int = 100,
        autorun: bool = True,
        oco_guardian: bool = True,
        naked_policy: str = "close",
        books: BookSource | None = None,
        position_poll_ms: int = 5000,
    ) -> None:
        self.store = store
        self.exchange = exchange
        self.ops = ops
        self.clock = clock
        self.metrics = metrics
        self.publisher = publisher
        self.leases = leases
        self._leases: dict[str, Lease] = {}
        self.fills = fills
        self.instruments = dict(instruments)
        self.working_type = working_type
        self.poll_ms = poll_ms
        self.autorun = autorun
        self.oco_guardian = oco_guardian
        self.naked_policy = naked_policy  # S4_NAKED_POLICY: "close" | "alert"
        self.books = books
        self.position_poll_ms = position_poll_ms
        self.active: dict[str, Protection] = {}
        self._woken: set[str] = set()  # protections named by venue reports since the last loop
        self._positions_ms: int | None = None  # last positions call of a batched round
        self._seq = itertools.count(1)
        self._wake = asyncio.Event()
        self._fill_seen: dict[str, float] = {}  # parent -> monotonic time a leg fill was seen

    # ------------------------------------------------------------------ intake
    def refusal(self, intent: OrderIntent) -> str | None:
        """Why this intent's protection cannot be provided (None: it can)."""
        if intent.reduce_only and intent.needs_protection:
            return "sl/tp on a reduce-only order: a close carries no brackets; refused"
        if intent.market is Market.FUT and intent.sl is None and intent.tp is not None:
            return "tp without sl: a take profit alone leaves the position without a stop"
        return None

    async def register(self, intent: OrderIntent, inst: Instrument) -> None:
        """Make the protection durable before the entry can fill (a crash after the fill must
        find it)."""
        coid = intent.client_order_id
        now = self.clock.now_ms()
        p = Protection(
            coid=coid, market=intent.market, symbol=intent.symbol, side=intent.side, inst=inst,
            intent=intent.model_dump(mode="json"), created_ts=now,
        )  # fmt: skip
        if intent.market is Market.FUT:
            sl, tp = intent.sl, intent.tp
            p.brackets = br.Brackets(
                parent_client_order_id=coid, position_side=intent.side,
                entry_target_qty=intent.qty, sl_price=sl.price if sl else None,
                tp_price=tp.price if tp else None,
                tp_net_profit_usdt=tp.value if tp and tp.price is None else None,
                working_type=self.working_type, next_child=FIRST_PROTECTIVE_CHILD,
            )  # fmt: skip
        try:
            await self.store.insert("strategy_events", {"_key": doc_key(coid), **self._doc(p)})
        except DuplicateKey:
            return  # the other path's copy of this intent registered it
        # One driver per protection across replicas (a peer's sweep skips a held lease).
        if await self._take(coid):
            self.active[coid] = p

    # --------------------------------------------------------------- the hook
    async def on_entry(
        self, coid: str, *, filled: Decimal, avg_price: Decimal | None, done: bool
    ) -> None:
        """Entry progress, straight from the execution step that booked it."""
        p = self.active.get(coid)
        if p is None:
            return
        try:
            async with p.lock:
                await self._feed_entry(p, filled, avg_price, done)
                await self._persist(p)
        except Exception:
            # The loop retries from the store and the venue; the entry must not stop here.
            log.exception("%s: protection update failed; the protection loop retries", coid)
            self._wake.set()

    def on_order_update(self, client_order_id: str) -> None:
        parsed = parent_of(client_order_id)
        if parsed is not None and parsed[0] in self.active:
            self._woken.add(parsed[0])
            self._wake.set()

    # ---------------------------------------------------------------- driving
    async def step(self, coid: str, snap: Snapshot | None = None) -> None:
        """Drive one protection; `snap`: this round's venue snapshot of its symbol (None: ask
        the venue about each of its orders, e.g. when a venue report named it)."""
        p = self.active.get(coid)
        if p is None:
            return
        async with p.lock:
            await self._step(p, snap)
            await self._persist(p)
        if p.final:
            self.active.pop(coid, None)
            await self._drop(coid)

    async def step_all(self) -> None:
        """One batched round: a venue snapshot per symbol, fanned out to every protection."""
        snaps = await self._snapshots()
        for coid in list(self.active):
            p = self.active.get(coid)
            if p is None:
                continue
            try:
                await self.step(coid, snaps.get(p.symbol, Snapshot()))
            except Exception:
                log.exception("%s: protection step failed; retried next round", coid)

    def _local_legs(self) -> dict[str, list[Protection]]:
        """Guardians watching a leg locally, by symbol."""
        out: dict[str, list[Protection]] = {}
        for p in list(self.active.values()):
            g = p.guardian
            if (
                g is not None
                and not g.state.is_final
                and any(ls.mode is og.LegMode.LOCAL for ls in (g.tp, g.sl))
            ):
                out.setdefault(p.symbol, []).append(p)
        return out

    async def price_tick(self) -> None:
        """The guardians' local legs against the published book when it is fresh (no venue
        call: between rounds only the market-data feed's book is read)."""
        if self.books is None:
            return
        for symbol, ps in self._local_legs().items():
            book = await self.books.published(Market.SPOT, symbol)
            if book is None or not self.books.fresh(book):
                continue
            for p in ps:
                async with p.lock:
                    g = p.guardian
                    if g is None or g.state.is_final:
                        continue
                    await self._guardian(p, g.on_price(book.best_bid, book.best_ask, self._now()))
                    await self._persist(p)
                if p.final:
                    self.active.pop(p.coid, None)
                    await self._drop(p.coid)

    async def _snapshots(self) -> dict[str, Snapshot]:
        fut: set[str] = set()
        spot: set[str] = set()
        pos: set[str] = set()
        local = set(self._local_legs())
        for p in list(self.active.values()):
            b, g, n = p.brackets, p.guardian, p.native
            if b is not None:
                if any(o.working for o in b.orders):
                    fut.add(p.symbol)
                if b.state is br.BracketState.PROTECTING and b.entry_filled > 0 and p.entry_done:
                    pos.add(p.symbol)
            if g is not None and any(ls.live for ls in (g.tp, g.sl)):
                spot.add(p.symbol)
            if n is not None and n["order_list_id"] is not None:
                spot.add(p.symbol)
        snaps = {s: Snapshot() for s in fut | spot | pos | local}
        for symbol in sorted(fut):
            try:
                algos = await self.exchange.fetch_open_conditionals(symbol)
            except ProtectionUnsupported:
                continue  # no batch call at this venue: each order is asked by its id
            except ExchangeError as exc:
                log.info("%s: open algo orders unavailable this round: %s", symbol, exc)
                snaps[symbol].conditionals_failed = True
                continue
            snaps[symbol].conditionals = {a.client_algo_id: a for a in algos}
        for symbol in sorted(spot):
            try:
                orders = await self.exchange.fetch_open_orders(Market.SPOT, symbol)
            except ExchangeError as exc:
                log.info("%s: open spot orders unavailable this round: %s", symbol, exc)
                snaps[symbol].spot_failed = True
                continue
            snaps[symbol].spot_orders = {o.client_order_id: o for o in orders}
        for symbol in sorted(local):
            try:
                snaps[symbol].book = await self._spot_book(symbol)
            except ExchangeError as exc:
                log.info("%s: no book for the guardians' local legs this round: %s", symbol, exc)
                snaps[symbol].book_failed = True
        now = self.clock.now_ms()
        if pos and (
            self._positions_ms is None or now - self._positions_ms >= self.position_poll_ms
        ):
            seq = next(self._seq)
            try:
                positions = await self.exchange.fetch_positions(sorted(pos))
            except ExchangeError as exc:
                log.info("positions unavailable this round: %s", exc)
            else:
                self._positions_ms = now
                qty = {x.symbol: x.qty for x in positions}
                for symbol in pos:
                    snaps[symbol].position = qty.get(symbol, ZERO)
                    snaps[symbol].position_seq = seq
        return snaps

    async def recover(self) -> int:
        """Re-arm every active protection nobody drives (startup and periodically)."""
        taken = 0
        for doc in await self.store.find(
            "strategy_events", Query(where={"kind": KIND, "active": True})
        ):
            coid = doc["parent_client_order_id"]
            if coid in self.active or not await self._take(coid):
                continue
            # The listing is older than the lease: a driver that let go in between may have
            # moved the protection on (or ended it). Only the document as stored now is loaded.
            try:
                fresh = await self.store.get("strategy_events", doc_key(coid))
            except Exception:
                await self._drop(coid)
                raise
            p = self._load(fresh) if fresh is not None and fresh.get("active") else None
            if p is None:
                await self._drop(coid)
                continue
            self.active[coid] = p
            taken += 1
            await self.publisher.event(
                "PROTECTION_REARMED", client_order_id=coid, symbol=p.symbol,
                data={"machine": _machine(p)},
            )  # fmt: skip
            with contextlib.suppress(Exception):
                await self.step(coid)
        return taken

    async def run(self, stop: asyncio.Event) -> None:
        """A batched round every `poll_ms`; in between, only the protections a venue report
        named are stepped (their own orders asked by id: a report means something changed)."""
        next_round = next_price = self.clock.monotonic()
        while not stop.is_set():
            due = min(next_round, next_price) if self._local_legs() else next_round
            delay = due - self.clock.monotonic()
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            woken, self._woken = self._woken, set()
            if self.clock.monotonic() >= next_price:
                next_price = self.clock.monotonic() + LOCAL_PRICE_MS / 1000
                try:
                    await self.price_tick()
                except Exception:
                    log.exception("guardian price check failed; retried next tick")
            if self.clock.monotonic() >= next_round:
                next_round = self.clock.monotonic() + self.poll_ms / 1000
                for coid in list(self.active):
                    with contextlib.suppress(Exception):
                        lease = self._leases.get(coid)
                        if lease is None or not await self.leases.renew(lease):
                            log.warning("%s: protection lease lost; a peer drives it now", coid)
                            self.active.pop(coid, None)
                            self._leases.pop(coid, None)
                await self.step_all()
                continue
            for coid in woken:
                try:
                    await self.step(coid)
                except Exception:
                    log.exception("%s: protection step failed; retried next round", coid)

    async def shutdown(self) -> None:
        for coid in list(self.active):
            with contextlib.suppress(Exception):
                await self._drop(coid)
        self.active.clear()

    async def _take(self, coid: str) -> bool:
        """Acquire this protection's lease (one driver per protection across replicas and
        across the tasks of this one); False when another acquisition holds it."""
        lease = await self.leases.acquire(_lease(coid))
        if lease is None:
            return False
        self._leases[coid] = lease
        return True

    async def _drop(self, coid: str) -> None:
        await self.leases.release(self._leases.pop(coid, None))

    # ------------------------------------------------------------ internals
    async def _step(self, p: Protection, snap: Snapshot | None = None) -> None:
        parent = await self.store.get("orders", p.coid)
        if parent is None:
            if self.clock.now_ms() - p.created_ts > 60_000:
                p.active = False  # the intent never became durable: nothing to protect
            return
        status = S(parent["status"])
        if not p.entry_done or Decimal(str(parent.get("filled_qty", "0"))) > p.entry_filled:
            avg = parent.get("avg_price")
            await self._feed_entry(
                p, Decimal(str(parent.get("filled_qty", "0"))),
                Decimal(str(avg)) if avg is not None else None, status.is_terminal,
            )  # fmt: skip
        if p.brackets is not None:
            await self._poll_brackets(p, snap)
        elif p.guardian is not None:
            await self._poll_guardian(p, snap)
        elif p.native is not None:
            await self._poll_native(p, snap)

    async def _feed_entry(
        self, p: Protection, filled: Decimal, avg: Decimal | None, done: bool
    ) -> None:
        now = self.clock.now_ms()
        if p.brackets is not None:
            b = p.brackets
            if filled > b.entry_filled and avg is not None:
                fees = (p.inst.taker_fee, p.inst.taker_fee)
                await self._brackets(
                    p, b.on_entry_fill(filled, filled * avg, now, p.inst, fee_rates=fees)
                )
            if done and not p.entry_done:
                await self._brackets(p, b.on_entry_done(now))
        elif (
            p.market is Market.SPOT and done and not p.entry_done
            and p.guardian is None and p.native is None
        ):  # fmt: skip
            if self.oco_guardian:
                await self._arm_guardian(p, filled)
            else:
                await self._arm_native(p, filled)
        p.entry_filled = max(p.entry_filled, filled)
        if done and p.entry_done_seq is None:
            p.entry_done_seq = next(self._seq)
        p.entry_done = p.entry_done or done

    # ---- FUT brackets ----------------------------------------------------------------------
    async def _brackets(self, p: Protection, cmds: list[br.BracketCommand]) -> None:
        b = p.brackets
        assert b is not None
        queue = list(cmds)
        while queue:
            c = queue.pop(0)
            now = self.clock.now_ms()
            if isinstance(c, br.PlaceProtective):
                if parent_of(c.client_order_id) is None:
                    await self._alert(p, "PROTECTIVE_IDS_EXHAUSTED",
                                      f"{c.client_order_id}: beyond E{MAX_CHILD}; not placed",
                                      severity="critical")  # fmt: skip
                    queue += b.on_order_report(c.client_order_id, S.REJECTED, ZERO, now)
                    continue
                await self._persist(p)  # the id is durable before the send
                await self._child_record(p, c.client_order_id, c.kind, c.side, c.type, c.qty,
                                         None, c.stop_price)  # fmt: skip
                report = await self._send_conditional(p, c)
                if report is not None:
                    queue += b.on_order_report(c.client_order_id, *report, self._now())
            elif isinstance(c, br.CancelProtective):
                report = await self._cancel_conditional(p, c.client_order_id)
                if report is not None:
                    queue += b.on_order_report(c.client_order_id, *report, self._now())
            elif isinstance(c, br.BracketAlert):
                await self._alert(p, c.kind, c.message, severity="critical")
            elif isinstance(c, br.BracketClosed):
                p.active = False
                if b.protected_ms is None and b.first_fill_ms is not None:
                    # Never protected (stop rejected): naked from the first fill until flat.
                    naked = (b.closed_ms or now) - b.first_fill_ms
                    p.observed["naked_observed"] = naked
                    self.metrics.naked.observe(naked / 1000)
                await self._event(p, "BRACKETS_CLOSED", c.summary)
        if _naked(b) and "naked_since" not in p.observed:
            await self._on_naked(p)
        if b.protected_ms is not None and "naked_observed" not in p.observed:
            naked = b.naked_ms or 0
            p.observed["naked_observed"] = naked
            self.metrics.naked.observe(naked / 1000)
            await self._event(p, "POSITION_PROTECTED", {"naked_ms": naked})

    def _now(self) -> int:
        return self.clock.now_ms()

    async def _on_naked(self, p: Protection) -> None:
        """The stop was rejected after the fill (e.g. the market moved through it): critical
        alert, then under S4_NAKED_POLICY=close the position is closed reduce-only at market
        (the id is durable before the send; a close is never sent twice)."""
        b = p.brackets
        assert b is not None
        close = self.naked_policy == "close"
        qty = b.position
        p.observed["naked_since"] = self._now()
        await self._alert(
            p, "POSITION_NAKED",
            f"stop rejected after the fill: {qty} {p.symbol} has no stop; "
            + ("closing it reduce-only at market (S4_NAKED_POLICY=close)" if close
               else "left open (S4_NAKED_POLICY=alert): act now"),
            severity="critical",
        )  # fmt: skip
        if not close:
            return
        p.observed["naked_close"] = b.next_child  # the close's child number, durable first
        cid = f"{p.coid}-E{b.next_child}"
        b.next_child += 1
        await self._persist(p)  # the id is durable before the send
        await self._child_record(p, cid, br.Kind.SL, b.exit_side, OrderType.MARKET, qty, None,
                                 None, role=OrderRole.STOP_LOSS)  # fmt: skip
        await self._naked_close(p)

    async def _naked_close(self, p: Protection) -> None:
        """Drive the reduce-only close of a naked position to a final state; resumable (the
        protection loop and a restart's re-arm call it again). A close sent before is looked
        up by its id first and resent with the same id only once it provably never landed."""
        b = p.brackets
        assert b is not None
        cid = f"{p.coid}-E{p.observed['naked_close']}"
        qty = b.position  # unchanged while naked: no protective order of ours works
        doc = await self.store.get("orders", cid)
        if doc is not None and S(doc["status"]).is_terminal:
            return
        order: ExchangeOrder | None = None
        if cid in p.sent:
            try:
                order = await self.ops.fetch(Market.FUT, p.symbol, cid)
            except OrderNotFound:
                if self.ops.landing_window_open(p.sent[cid]):
                    return
            except RetryableError:
                return
        if order is None:
            req = PlaceOrderRequest(
                market=Market.FUT, symbol=p.symbol, side=b.exit_side, type=OrderType.MARKET,
                qty=qty, client_order_id=cid, reduce_only=True,
            )  # fmt: skip
            p.sent[cid] = self._now()
            await self._persist(p)
            try:
                order = await self.ops.send(req, since_ms=self._now() - 1000)
            except Unresolved as exc:
                if "naked_close_unresolved" not in p.observed:
                    p.observed["naked_close_unresolved"] = self._now()
                    await self._alert(p, "NAKED_CLOSE_UNRESOLVED", f"{cid}: {exc}",
                                      severity="critical")  # fmt: skip
                return  # looked up again on the next poll
            except DefinitiveError as exc:
                await self._set_child(cid, S.REJECTED, str(exc))
                await self._alert(p, "NAKED_CLOSE_FAILED", f"{cid}: {exc}", severity="critical")
                return
        if order.filled_qty > 0:
            await self._book(p, cid, order)
        await self._set_child(cid, S(order.status), "naked close", filled=order.filled_qty,
                              avg=order.avg_price, venue_id=order.venue_order_id)  # fmt: skip
        if not order.status.is_terminal:
            return
        await self._event(p, "NAKED_CLOSE", {
            "client_order_id": cid, "qty": str(qty), "filled": str(order.filled_qty),
            "status": order.status.value,
        })  # fmt: skip
        if order.filled_qty >= qty:
            await self._brackets(p, b.on_position(ZERO, self._now()))
        else:
            await self._alert(p, "NAKED_CLOSE_PARTIAL",
                              f"{cid}: closed {order.filled_qty} of {qty}; the rest is naked",
                              severity="critical")  # fmt: skip

    async def _send_conditional(
        self, p: Protection, c: br.PlaceProtective
    ) -> tuple[OrderStatus, Decimal] | None:
        req = PlaceOrderRequest(
            market=Market.FUT, symbol=p.symbol, side=c.side, type=c.type, qty=c.qty,
            client_order_id=c.client_order_id, stop_price=c.stop_price, reduce_only=True,
            working_type=c.working_type,
        )  # fmt: skip
        for attempt in range(self.ops.retry.attempts):
            p.sent[c.client_order_id] = self.clock.now_ms()
            try:
                algo = await self.exchange.place_conditional(req)
            except DuplicateOrder:
                return await self._query_conditional(p, c.client_order_id)
            except AmbiguousSubmit:
                return await self._query_conditional(p, c.client_order_id)
            except RetryableError as exc:
                if attempt + 1 < self.ops.retry.attempts:
                    await self.ops.sleep(self.ops._delay(attempt + 1, exc))
                    continue
                return await self._query_conditional(p, c.client_order_id)
            except DefinitiveError as exc:
                await self._set_child(c.client_order_id, S.REJECTED, str(exc))
                return S.REJECTED, ZERO
            return await self._algo_report(p, c.client_order_id, algo)
        return None

    async def _query_conditional(
        self, p: Protection, cid: str
    ) -> tuple[OrderStatus, Decimal] | None:
        try:
            algo = await self.ops.call(
                lambda: self.exchange.fetch_conditional(p.symbol, client_algo_id=cid)
            )
        except OrderNotFound:
            return None  # not (yet) there: resolved on a later poll, resent after recvWindow
        except RetryableError:
            return None
        return await self._algo_report(p, cid, algo)

    async def _cancel_conditional(
        self, p: Protection, cid: str
    ) -> tuple[OrderStatus, Decimal] | None:
        try:
            algo = await self.ops.call(
                lambda: self.exchange.cancel_conditional(p.symbol, client_algo_id=cid)
            )
        except OrderNotFound:
            return await self._query_conditional(p, cid) or (
                (S.EXPIRED, ZERO) if not self.ops.landing_window_open(p.sent.get(cid)) else None
            )
        except ExchangeError as exc:
            log.info("%s: cancel deferred: %s", cid, exc)
            return None
        return await self._algo_report(p, cid, algo)

    async def _algo_report(
        self, p: Protection, cid: str, algo: ConditionalOrder
    ) -> tuple[OrderStatus, Decimal]:
        """Venue truth of a conditional order → (status, cumulative fill); books its fills."""
        if algo.status == "FINISHED" and algo.triggered_order_id:
            order = await self.ops.call(
                lambda: self.exchange.fetch_order(
                    Market.FUT, p.symbol, venue_order_id=algo.triggered_order_id
                )
            )
            await self._book(p, cid, order)
            status = S.FILLED if order.filled_qty > 0 else S(order.status)
            if order.status is not S.FILLED and order.filled_qty > 0:
                status = S.FILLED  # what it closed is what it closed; the rest was reduce-only
            await self._set_child(cid, status, f"triggered: order {order.venue_order_id}",
                                  filled=order.filled_qty, avg=order.avg_price,
                                  venue_id=algo.algo_id)  # fmt: skip
            return status, order.filled_qty
        if algo.status == "FINISHED":
            status = S.EXPIRED
        else:
            status = _ALGO_STATUS.get(algo.status, S.ACCEPTED)
        await self._set_child(cid, status, f"algo {algo.status}", venue_id=algo.algo_id)
        return status, ZERO

    async def _poll_brackets(self, p: Protection, snap: Snapshot | None) -> None:
        b = p.brackets
        assert b is not None
        if b.state in (br.BracketState.CLOSED, br.BracketState.FAILED):
            p.active = False
            return
        if "naked_close" in p.observed:
            await self._naked_close(p)
            if b.state is not br.BracketState.PROTECTING:
                return
        for o in list(b.orders):
            if not o.working:
                continue
            if snap is not None and snap.conditionals_failed:
                break  # the venue did not answer this round's snapshot: next round
            if snap is not None and snap.conditionals is not None:
                algo = snap.conditionals.get(o.client_order_id)
                if algo is not None and o.status is not None:
                    continue  # acknowledged and still open: nothing new to learn
                report = await (
                    self._algo_report(p, o.client_order_id, algo)
                    if algo is not None
                    else self._query_conditional(p, o.client_order_id)  # it left the open list
                )
            else:
                report = await self._query_conditional(p, o.client_order_id)
            if (
                report is None
                and o.status is None
                and not self.ops.landing_window_open(p.sent.get(o.client_order_id))
            ):
                # Provably never landed: the same id again (never a new one).
                kind_type = (
                    OrderType.STOP_MARKET if o.kind is br.Kind.SL else OrderType.TAKE_PROFIT_MARKET
                )
                report = await self._send_conditional(p, br.PlaceProtective(
                    kind=o.kind, client_order_id=o.client_order_id, side=b.exit_side,
                    type=kind_type, qty=o.qty, stop_price=o.stop_price,
                    working_type=b.working_type,
                ))  # fmt: skip
            if report is not None:
                await self._brackets(p, b.on_order_report(o.client_order_id, *report, self._now()))
        if b.state is br.BracketState.PROTECTING and b.entry_filled > 0:
            # A manual close (or a liquidation) shows only in the position: read from the
            # round's one positions call, and only when it was asked after the entry was done
            # (an earlier answer cannot show the entry's position).
            if snap is None or snap.position is None or not p.entry_done:
                return
            if p.entry_done_seq is None or p.entry_done_seq > snap.position_seq:
                return
            if snap.position == 0:
                await self._brackets(p, b.on_position(ZERO, self._now()))

    # ---- SPOT OCO guardian -----------------------------------------------------------------
    async def _arm_guardian(
        self, p: Protection, filled: Decimal, *, first_child: int = FIRST_PROTECTIVE_CHILD
    ) -> None:
        pol = OcoPolicy.model_validate(p.intent["exec_policy"])
        qty = await self._oco_qty(p, filled, pol)
        if qty <= 0 or (qty * pol.sl_price < p.inst.minNotional):
            p.active = False
            why = "nothing (tradeable) to protect"
            await self._event(
                p, "OCO_SKIPPED", {"filled": str(filled), "qty": str(qty), "reason": why}
            )
            return
        both = self.exchange.spot_stop_orders and await self._backs_both(p, qty, pol)
        g = og.OcoGuardian.new(
            parent_client_order_id=p.coid, position_side=p.side, qty=qty,
            tp_price=pol.tp_price, sl_price=pol.sl_price, sl_limit_price=pol.sl_limit_price,
            both_rest=both, priority=og.Leg.SL if self.exchange.spot_stop_orders else og.Leg.TP,
            first_child=first_child,
        )  # fmt: skip
        p.guardian = g
        await self._guardian(p, g.arm(self._now()))

    async def _oco_qty(self, p: Protection, filled: Decimal, pol: OcoPolicy) -> Decimal:
        """The legs' size, with a critical alert when they leave more than one step of the
        fill uncovered, or nothing at all of a fill (legs below minNotional are skipped)."""
        qty = await self._spot_position(p, filled)
        covered = qty if qty * pol.sl_price >= p.inst.minNotional else ZERO
        short = filled - covered
        if short > p.inst.stepSize or (filled > 0 and covered == 0):
            self.metrics.oco_anomalies.inc()
            await self._alert(
                p, "OCO_LEG_SHORTFALL",
                f"OCO legs cover {covered} of the {filled} {p.inst.base_asset} filled: {short} "
                "unprotected",
                severity="critical",
            )  # fmt: skip
        return qty

    async def _spot_position(self, p: Protection, filled: Decimal) -> Decimal:
        """What the legs sell: the fill net of the fees taken in the base asset, to the step.

        Rounding the net down would leave almost a whole step unprotected (a 0.002 BUY, fee
        0.0000008 BTC, legs floor(0.0019992) = 0.001). So the net rounds *up* to the step, never
        beyond the fill: the fee's dust comes from the account's free base balance, which must
        hold it (else the legs fall back to what it holds, floored to the step)."""
        fills = await self.store.find("fills", Query(where={"parent_client_order_id": p.coid}))
        fee = sum(
            (Decimal(f["fee"]) for f in fills
             if f["fee_asset"] == p.inst.base_asset and f.get("role") not in _PROT_ROLE_VALUES),
            ZERO,
        )  # fmt: skip
        step = p.inst.stepSize
        if p.side is not Side.BUY:
            return round_to_increment(filled, step, "down") if filled > 0 else ZERO
        net = filled - fee
        if net <= 0:
            return ZERO
        want = min(round_to_increment(net, step, "up"), round_to_increment(filled, step, "down"))
        try:
            bals = await self.ops.call(lambda: self.exchange.fetch_balances(Market.SPOT))
        except ExchangeError:
            return round_to_increment(net, step, "down")  # cannot prove the dust is there
        bal = bals.get(p.inst.base_asset)
        free = bal.free if bal is not None else ZERO
        if free >= want:
            return want
        return round_to_increment(min(net, free), step, "down") if free > 0 else ZERO

    async def _backs_both(self, p: Protection, qty: Decimal, pol: OcoPolicy) -> bool:
        try:
            bals = await self.ops.call(lambda: self.exchange.fetch_balances(Market.SPOT))
        except ExchangeError:
            return False
        if p.side is Side.BUY:
            free = bals.get(p.inst.base_asset)
            return free is not None and free.free >= 2 * qty
        free = bals.get(p.inst.quote_asset)
        return free is not None and free.free >= qty * (pol.tp_price + pol.sl_price)

    async def _guardian(self, p: Protection, cmds: list[og.Command]) -> None:
        g = p.guardian
        assert g is not None
        queue = list(cmds)
        while queue:
            c = queue.pop(0)
            if isinstance(c, og.PlaceLeg):
                await self._persist(p)
                role = OrderRole.OCO_ABOVE if (c.leg is og.Leg.TP) == (p.side is Side.BUY) else (
                    OrderRole.OCO_BELOW
                )  # fmt: skip
                await self._child_record(p, c.client_order_id, c.leg, c.side, c.type, c.qty,
                                         c.price, c.stop_price, role=role)  # fmt: skip
                queue += await self._send_leg(p, c)
            elif isinstance(c, og.CancelLeg):
                queue += await self._cancel_leg(p, c.client_order_id)
            elif isinstance(c, og.QueryLeg):
                queue += await self._query_leg(p, c.client_order_id)
            elif isinstance(c, og.Resolved):
                p.active = False
                await self._resolved(p, c)
            elif isinstance(c, og.RaiseAlert):
                self.metrics.oco_anomalies.inc()
                await self._alert(p, c.kind, c.message, severity="critical")

    async def _send_leg(self, p: Protection, c: og.PlaceLeg) -> list[og.Command]:
        g = p.guardian
        assert g is not None
        req = PlaceOrderRequest(
            market=Market.SPOT, symbol=p.symbol, side=c.side, type=c.type, qty=c.qty,
            client_order_id=c.client_order_id, price=c.price, stop_price=c.stop_price,
            post_only=c.type is OrderType.LIMIT_MAKER,
        )  # fmt: skip
        p.sent[c.client_order_id] = self.clock.now_ms()
        try:
            order = await self.ops.send(req, since_ms=self.clock.now_ms() - 1000)
        except Unresolved:
            return []  # resolved by the polling below (same id, never a new one)
        except DefinitiveError as exc:
            await self._set_child(c.client_order_id, S.REJECTED, str(exc))
            return g.on_place_rejected(c.client_order_id, str(exc), self._now())
        return await self._leg_report(p, c.client_order_id, order)

    async def _cancel_leg(self, p: Protection, cid: str) -> list[og.Command]:
        g = p.guardian
        assert g is not None
        seen = self._fill_seen.pop(p.coid, None)
        if seen is not None:
            # Fill observed → sibling cancel sent (the guardian's reaction time).
            lat = max(0.0, self.clock.monotonic() - seen)
            p.observed["sibling_cancel_us"] = int(lat * 1_000_000)
            self.metrics.oco_cancel.observe(lat)
        try:
            order = await self.ops.cancel(Market.SPOT, p.symbol, cid)
        except ExchangeError as exc:
            log.info("%s: leg cancel deferred: %s", cid, exc)
            return []  # the guardian's timer queries it (polling fallback)
        if order is None:
            return await self._query_leg(p, cid)
        return await self._leg_report(p, cid, order)

    async def _query_leg(self, p: Protection, cid: str) -> list[og.Command]:
        try:
            order = await self.ops.fetch(Market.SPOT, p.symbol, cid)
        except OrderNotFound:
            g = p.guardian
            assert g is not None
            if self.ops.landing_window_open(p.sent.get(cid)):
                return []
            return g.on_report(cid, S.EXPIRED, ZERO, self._now())
        except RetryableError:
            return []
        return await self._leg_report(p, cid, order)

    async def _leg_report(self, p: Protection, cid: str, order: ExchangeOrder) -> list[og.Command]:
        g = p.guardian
        assert g is not None
        leg = g.leg_of(cid)
        if leg is not None and order.filled_qty > g.leg(leg).orders.get(cid, ZERO):
            self._fill_seen.setdefault(p.coid, self.clock.monotonic())
        if order.filled_qty > 0:
            await self._book(p, cid, order)  # idempotent: unique (venue, order_id, trade_id)
        await self._set_child(cid, S(order.status), None, filled=order.filled_qty,
                              avg=order.avg_price, venue_id=order.venue_order_id)  # fmt: skip
        return g.on_report(cid, S(order.status), order.filled_qty, self._now())

    async def _poll_guardian(self, p: Protection, snap: Snapshot | None) -> None:
        g = p.guardian
        assert g is not None
        if g.state.is_final:
            p.active = False
            return
        for ls in (g.tp, g.sl):
            if not (ls.live and ls.client_order_id is not None and ls.cancel_sent_ms is None):
                continue
            cid = ls.client_order_id
            if snap is not None and snap.spot_failed:
                continue  # no snapshot this round: the next round asks again
            if snap is not None and snap.spot_orders is not None:
                order = snap.spot_orders.get(cid)
                if order is None:
                    await self._guardian(p, await self._query_leg(p, cid))  # left the list
                elif (ls.status, ls.orders.get(cid)) != (order.status, order.filled_qty):
                    await self._guardian(p, await self._leg_report(p, cid, order))
                continue
            await self._guardian(p, await self._query_leg(p, cid))
        if any(ls.mode is og.LegMode.LOCAL for ls in (g.tp, g.sl)) and not g.state.is_final:
            book: BookTop | None = None
            if snap is not None and (snap.book is not None or snap.book_failed):
                book = snap.book  # the round's one book of the symbol
            else:
                try:
                    book = await self._spot_book(p.symbol)
                except ExchangeError:
                    book = None
            if book is not None and book.bids and book.asks:
                await self._guardian(p, g.on_price(book.best_bid, book.best_ask, self._now()))
        await self._guardian(p, g.on_timer(self._now()))

    async def _spot_book(self, symbol: str) -> BookTop:
        """The venue's book (authoritative for a stop; the published one is only used between
        rounds, by `price_tick`, as a faster hint)."""
        return await self.exchange.fetch_book(Market.SPOT, symbol)

    async def _resolved(self, p: Protection, c: og.Resolved) -> None:
        summary = dict(c.summary)
        summary["mode"] = "guardian"
        summary["observed"] = dict(p.observed)
        self._fill_seen.pop(p.coid, None)
        await self._event(p, "OCO_RESOLVE", {"winner": c.winner.value, **summary})

    # ---- SPOT OCO at the venue (native order list) -----------------------------------------
    async def _arm_native(self, p: Protection, filled: Decimal) -> None:
        """One venue OCO list for what the entry bought/sold: list id E60, take-profit leg E61
        (LIMIT_MAKER), stop leg E62 (STOP_LOSS / STOP_LOSS_LIMIT). Durable before the send."""
        pol = OcoPolicy.model_validate(p.intent["exec_policy"])
        qty = await self._oco_qty(p, filled, pol)
        if qty <= 0 or (qty * pol.sl_price < p.inst.minNotional):
            p.active = False
            why = "nothing (tradeable) to protect"
            await self._event(
                p, "OCO_SKIPPED", {"filled": str(filled), "qty": str(qty), "reason": why}
            )
            return
        n = FIRST_PROTECTIVE_CHILD
        exit_side = Side.SELL if p.side is Side.BUY else Side.BUY
        tp_cid, sl_cid = f"{p.coid}-E{n + 1}", f"{p.coid}-E{n + 2}"
        p.native = {
            "list_client_order_id": f"{p.coid}-E{n}", "order_list_id": None,
            "status": "PENDING", "side": exit_side.value, "qty": str(qty), "filled": str(filled),
            "tp_price": str(pol.tp_price), "sl_price": str(pol.sl_price),
            "sl_limit_price": str(pol.sl_limit_price) if pol.sl_limit_price else None,
            "legs": {
                "TP": {"client_order_id": tp_cid, "status": None, "filled": "0"},
                "SL": {"client_order_id": sl_cid, "status": None, "filled": "0"},
            },
            "winner": None, "timings": {"armed": self._now()},
        }  # fmt: skip
        tp_role, sl_role = (
            (OrderRole.OCO_ABOVE, OrderRole.OCO_BELOW) if exit_side is Side.SELL
            else (OrderRole.OCO_BELOW, OrderRole.OCO_ABOVE)
        )  # fmt: skip
        sl_type = OrderType.STOP_LOSS_LIMIT if pol.sl_limit_price else OrderType.STOP_MARKET
        await self._persist(p)
        await self._child_record(p, tp_cid, og.Leg.TP, exit_side, OrderType.LIMIT_MAKER, qty,
                                 pol.tp_price, None, role=tp_role)  # fmt: skip
        await self._child_record(p, sl_cid, og.Leg.SL, exit_side, sl_type, qty,
                                 pol.sl_limit_price, pol.sl_price, role=sl_role)  # fmt: skip
        await self._send_native(p)

    async def _send_native(self, p: Protection) -> None:
        n = p.native
        assert n is not None
        lcid = n["list_client_order_id"]
        p.sent[lcid] = self.clock.now_ms()
        await self._persist(p)  # the attempt is durable before the send (a restart looks it up)
        slp = n["sl_limit_price"]
        try:
            lst = await self.exchange.place_oco(
                p.symbol, Side(n["side"]), Decimal(n["qty"]), limit_price=Decimal(n["tp_price"]),
                stop_price=Decimal(n["sl_price"]),
                stop_limit_price=Decimal(slp) if slp else None, list_client_order_id=lcid,
                limit_client_order_id=n["legs"]["TP"]["client_order_id"],
                stop_client_order_id=n["legs"]["SL"]["client_order_id"],
            )  # fmt: skip
        except ProtectionUnsupported as exc:
            await self._native_fallback(p, f"venue has no OCO lists: {exc}")
            return
        except (AmbiguousSubmit, RetryableError, DuplicateOrder) as exc:
            log.info("%s: OCO list send unanswered (%s); looked up by its id", lcid, exc)
            with contextlib.suppress(RetryableError):
                await self._lookup_native(p)
            return
        except DefinitiveError as exc:
            await self._native_fallback(p, f"OCO list rejected: {exc}")
            return
        await self._native_report(p, lst)

    async def _lookup_native(self, p: Protection) -> bool:
        """The list by its client id (adopted when found): True when it exists at the venue."""
        n = p.native
        assert n is not None
        lcid = n["list_client_order_id"]
        try:
            lst = await self.ops.call(lambda: self.exchange.fetch_order_list(
                symbol=p.symbol, list_client_order_id=lcid))  # fmt: skip
        except OrderNotFound:
            return False
        await self._native_report(p, lst)
        return True

    async def _native_fallback(self, p: Protection, reason: str) -> None:
        n = p.native
        assert n is not None
        for leg in n["legs"].values():
            await self._set_child(leg["client_order_id"], S.REJECTED, reason)
        p.native = None
        await self._event(p, "OCO_GUARDIAN_FALLBACK", {"reason": reason})
        # The guardian's ids follow the native ones (E60..E62 are taken).
        filled = max(p.entry_filled, Decimal(n["filled"]))
        await self._arm_guardian(p, filled, first_child=FIRST_PROTECTIVE_CHILD + 3)

    async def _poll_native(self, p: Protection, snap: Snapshot | None = None) -> None:
        n = p.native
        assert n is not None
        if n["status"] in ("ALL_DONE", "FAILED"):
            p.active = False
            return
        if n["order_list_id"] is not None and snap is not None:
            if snap.spot_failed:
                return
            if snap.spot_orders is not None and all(
                (o := snap.spot_orders.get(leg["client_order_id"])) is not None
                and leg["status"] == o.status.value
                and Decimal(leg["filled"]) == o.filled_qty
                for leg in n["legs"].values()
            ):
                return  # both legs open and unchanged: the list has nothing new
        if n["order_list_id"] is None:
            # Never acknowledged: the same list client id is looked up first, and resent (same
            # ids) only once the venue's recvWindow has passed without a trace of it.
            try:
                found = await self._lookup_native(p)
            except RetryableError:
                return
            if not found and not self.ops.landing_window_open(
                p.sent.get(n["list_client_order_id"])
            ):
                await self._send_native(p)
            return
        try:
            lst = await self.ops.call(lambda: self.exchange.fetch_order_list(
                n["order_list_id"], symbol=p.symbol))  # fmt: skip
        except RetryableError:
            return
        await self._native_report(p, lst)

    async def _native_report(self, p: Protection, lst: OcoOrderList) -> None:
        n = p.native
        assert n is not None
        now = self._now()
        timings: dict[str, int] = n["timings"]
        if n["order_list_id"] is None:
            n["order_list_id"] = lst.order_list_id
            timings.setdefault("acked", now)
        n["status"] = "ALL_DONE" if lst.status == "ALL_DONE" else "EXEC_STARTED"
        for order in lst.orders:
            name = next((k for k, v in n["legs"].items()
                         if v["client_order_id"] == order.client_order_id), None)  # fmt: skip
            if name is None:
                continue
            leg = n["legs"][name]
            if order.filled_qty > 0:
                await self._book(p, order.client_order_id, order)
                timings.setdefault(f"{name.lower()}_filled", now)
            elif order.status is S.CANCELED:
                timings.setdefault(f"{name.lower()}_cancelled", now)
            leg["status"] = order.status.value
            leg["filled"] = str(order.filled_qty)
            await self._set_child(order.client_order_id, S(order.status), None,
                                  filled=order.filled_qty, avg=order.avg_price,
                                  venue_id=order.venue_order_id)  # fmt: skip
        if n["status"] == "ALL_DONE":
            timings.setdefault("resolved", now)
            tp, sl = (Decimal(n["legs"][k]["filled"]) for k in ("TP", "SL"))
            n["winner"] = "TP" if tp > 0 and tp >= sl else "SL" if sl > 0 else None
            p.active = False
            if n["winner"] is None:
                # Done at the venue with neither leg filled (cancelled / expired outside S4):
                # the position is no longer protected.
                self.metrics.oco_anomalies.inc()
                why = f"OCO list {n['list_client_order_id']} ended with no leg filled: unprotected"
                await self._alert(p, "OCO_LIST_DONE_UNFILLED", why, severity="critical")
            await self._event(p, "OCO_RESOLVE", {
                "winner": n["winner"], "mode": "native", "state": "RESOLVED",
                "parent_client_order_id": p.coid, "qty": n["qty"],
                "order_list_id": n["order_list_id"],
                "list_client_order_id": n["list_client_order_id"],
                "legs": {k: {"mode": "VENUE", **v} for k, v in n["legs"].items()},
                "timings": dict(timings), "observed": dict(p.observed),
            })  # fmt: skip

    # ---- records ---------------------------------------------------------------------------
    async def _child_record(
        self,
        p: Protection,
        cid: str,
        kind: br.Kind | og.Leg,
        side: Side,
        type_: OrderType,
        qty: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        *,
        role: OrderRole | None = None,
    ) -> None:
        now = self.clock.now_ms()
        rec = OrderRecord(
            client_order_id=cid, parent_client_order_id=p.coid, intent_id=p.intent["intent_id"],
            venue=self.exchange.venue, market=p.market, symbol=p.symbol, side=side, type=type_,
            qty=qty, price=price, stop_price=stop_price, reduce_only=p.market is Market.FUT,
            status=S.SUBMITTED,
            history=[StateChange(status=S.NEW, ts=now),
                     StateChange(status=S.SUBMITTED, ts=now, reason=f"protective {kind.value}")],
            created_ts=now, updated_ts=now, ts_send=now,
            role=role or (OrderRole.STOP_LOSS if kind.value == "SL" else OrderRole.TAKE_PROFIT),
            link_group=p.coid,
        )  # fmt: skip
        with contextlib.suppress(DuplicateKey):
            await self.store.insert("orders", {"_key": cid, **rec.model_dump(mode="json")})

    async def _set_child(
        self,
        cid: str,
        status: OrderStatus,
        message: str | None,
        *,
        filled: Decimal | None = None,
        avg: Decimal | None = None,
        venue_id: str | None = None,
    ) -> None:
        doc = await self.store.get("orders", cid)
        if doc is None:
            return
        now = self.clock.now_ms()
        patch: dict[str, Any] = {"updated_ts": now}
        if doc["status"] != status.value and not S(doc["status"]).is_terminal:
            patch["status"] = status.value
            patch["history"] = [*doc.get("history", []),
                                {"status": status.value, "ts": now, "reason": message}]  # fmt: skip
            if doc.get("ts_ack") is None and status is not S.REJECTED:
                patch["ts_ack"] = now
        if message:
            patch["message"] = message
        if filled is not None:
            patch["filled_qty"] = str(filled)
        if avg is not None:
            patch["avg_price"] = str(avg)
        if venue_id and not doc.get("venue_order_id"):
            patch["venue_order_id"] = venue_id
        await self.store.update("orders", cid, patch)

    async def _book(self, p: Protection, cid: str, order: ExchangeOrder) -> None:
        trades: list[ExchangeTrade] = list(order.trades)
        if sum((t.qty for t in trades), ZERO) < order.filled_qty:
            try:
                every = await self.ops.call(
                    lambda: self.exchange.fetch_my_trades(p.market, p.symbol, p.created_ts)
                )
            except RetryableError:
                return  # booked on a later poll
            trades = [t for t in every if t.venue_order_id == order.venue_order_id]
        role = OrderRole.STOP_LOSS
        doc = await self.store.get("orders", cid)
        if doc is not None and doc.get("role"):
            role = OrderRole(doc["role"])
        # The same booking path as the entry's (stored once, over-fill checked and alerted).
        booked = await self.store.find("fills", Query(where={"client_order_id": cid}))
        ledger = ledger_for(order.qty, booked, cid)
        for t in trades:
            fill = FillRecord(
                venue=self.exchange.venue, order_id=t.venue_order_id, trade_id=t.trade_id,
                client_order_id=cid, parent_client_order_id=p.coid, market=p.market,
                symbol=p.symbol, side=t.side, price=t.price, qty=t.qty, fee=t.fee,
                fee_asset=t.fee_asset, liquidity=t.liquidity or Liquidity.TAKER, ts_fill=t.ts,
                role=role,
            )  # fmt: skip
            await self.fills.book(fill, ledger)

    # ---- persistence -----------------------------------------------------------------------
    def _doc(self, p: Protection) -> dict[str, Any]:
        machine = _machine(p)
        state = (
            p.brackets.model_dump(mode="json") if p.brackets is not None
            else p.guardian.model_dump(mode="json") if p.guardian is not None
            else dict(p.native) if p.native is not None else None
        )  # fmt: skip
        return {
            "kind": KIND, "ts": p.created_ts, "parent_client_order_id": p.coid,
            "market": p.market.value, "symbol": p.symbol, "side": p.side.value,
            "machine": machine, "active": p.active and not p.final, "state": state,
            "intent": p.intent, "entry_done": p.entry_done, "entry_filled": str(p.entry_filled),
            "sent": dict(p.sent),
            "observed": dict(p.observed),
            "updated_ts": self.clock.now_ms(),
        }  # fmt: skip

    async def _persist(self, p: Protection) -> None:
        doc = self._doc(p)
        same = {k: v for k, v in doc.items() if k != "updated_ts"}
        if same == p.persisted:
            return  # an unchanged round writes nothing
        await self.store.update("strategy_events", doc_key(p.coid), doc)
        p.persisted = copy.deepcopy(same)

    def _load(self, doc: dict[str, Any]) -> Protection | None:
        inst = self.instruments.get(doc["symbol"])
        if inst is None:
            return None
        p = Protection(
            coid=doc["parent_client_order_id"], market=Market(doc["market"]),
            symbol=doc["symbol"], side=Side(doc["side"]), inst=inst, intent=doc["intent"],
            entry_done=bool(doc["entry_done"]), entry_filled=Decimal(doc["entry_filled"]),
            sent={k: int(v) for k, v in doc.get("sent", {}).items()},
            observed=dict(doc.get("observed", {})), created_ts=int(doc["ts"]),
        )  # fmt: skip
        if p.entry_done:
            p.entry_done_seq = next(self._seq)
        state = doc.get("state")
        if state is not None:
            if doc["machine"] == "BRACKETS":
                p.brackets = br.Brackets.model_validate(state)
            elif doc["machine"] == "OCO_NATIVE":
                p.native = dict(state)
            else:
                p.guardian = og.OcoGuardian.model_validate(state)
        return p

    async def _event(self, p: Protection, name: str, data: dict[str, Any]) -> None:
        now = self.clock.now_ms()
        with contextlib.suppress(DuplicateKey):
            await self.store.insert("strategy_events", {
                "_key": f"{name.lower()}:{p.coid}", "kind": name, "ts": now,
                "parent_client_order_id": p.coid, "symbol": p.symbol, "data": data,
            })  # fmt: skip
        await self.publisher.event(name, client_order_id=p.coid, symbol=p.symbol, data=data)

    async def _alert(self, p: Protection, kind: str, message: str, *, severity: Any) -> None:
        await self.publisher.alert(kind, f"{p.coid}: {message}", severity=severity,
                                   data={"symbol": p.symbol})  # fmt: skip


_PROT_ROLE_VALUES = frozenset(r.value for r in PROTECTIVE_ROLES)


def _naked(b: br.Brackets) -> bool:
    """An open position whose stop the venue rejected and none other works."""
    return (
        b.state is br.BracketState.PROTECTING
        and b.position > 0
        and not b.working(br.Kind.SL)
        and any(o.kind is br.Kind.SL and o.status is S.REJECTED for o in b.orders)
    )


def _machine(p: Protection) -> str:
    if p.market is Market.FUT:
        return "BRACKETS"
    return "OCO_NATIVE" if p.native is not None else "OCO_GUARDIAN"


def _lease(coid: str) -> str:
    return f"{coid}:prot"
