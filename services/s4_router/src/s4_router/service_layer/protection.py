"""Protective orders: one protection per parent intent, driven by one of three pure machines —
`policies.brackets` (FUT SL/TP), `policies.oco_guardian` (SPOT OCO kept by S4) or
`policies.oco_native` (SPOT OCO as a venue list, `S4_OCO_GUARDIAN=false`) — whose commands one
interpreter (`protection_interp`) carries out through a thin driver per mode
(`protection_brackets`, `protection_oco`). This module owns the intake, the driving loop, the
leases and the recovery; the stored shape is `protection_records`' (its document is written
*before* anything the machine asks for is sent; protective orders are ordinary child records from
`FIRST_PROTECTIVE_CHILD`, so reconciliation knows them and `GET /orders/{id}` shows them).

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
import itertools
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import ExchangeError, ExchangePort, ProtectionUnsupported
from s4_router.adapters.leases import Lease, Leases
from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.metrics import RouterMetrics
from s4_router.policies import brackets as br
from s4_router.policies.oco_native import NativeOco
from s4_router.service_layer.book_source import BookSource
from s4_router.service_layer.fill_book import FillBook
from s4_router.service_layer.protection_brackets import BracketsDriver
from s4_router.service_layer.protection_interp import Driver, Interpreter
from s4_router.service_layer.protection_oco import GuardianDriver, NativeDriver
from s4_router.service_layer.protection_records import (
    KIND,
    MACHINES,
    PROTECTIVE_ROLES,
    Protection,
    Snapshot,
    doc_key,
)
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.venue_ops import VenueOps
from svckit.clock import Clock
from svckit.errors import DuplicateKey
from svckit.store.base import DocumentStore, Query
from tradekit.enums import Market, OrderStatus, Side
from tradekit.ids import parent_of
from tradekit.instrument import Instrument
from tradekit.intents import OrderIntent
from tradekit.money import ZERO
from tradekit.orders import OrderRecord

__all__ = ["PROTECTIVE_ROLES", "ProtectionService", "doc_key", "is_protective"]

log = logging.getLogger(__name__)

S = OrderStatus
# Entry children count up from E1; protective orders from here (ids stay ≤ E99, the venue's
# 36-character limit). An entry never comes close to 60 children (≤ 4 slices × a few retries).
FIRST_PROTECTIVE_CHILD = 60
LOCAL_PRICE_MS = 100  # the guardians' local legs against the published book (module docstring)


def is_protective(order: OrderRecord) -> bool:
    return order.role in PROTECTIVE_ROLES


@dataclass(kw_only=True, eq=False)
class ProtectionService:
    store: DocumentStore
    orders: OrdersRepository
    exchange: ExchangePort
    ops: VenueOps
    clock: Clock
    metrics: RouterMetrics
    publisher: Publisher
    leases: Leases
    fills: FillBook
    instruments: dict[str, Instrument]
    working_type: str = "MARK_PRICE"
    poll_ms: int = 100
    oco_guardian: bool = True
    naked_policy: str = "close"
    unprotected_alert_ms: int = 5_000
    books: BookSource | None = None
    position_poll_ms: int = 5000
    active: dict[str, Protection] = field(default_factory=dict, init=False)
    _leases: dict[str, Lease] = field(default_factory=dict, init=False)
    # Protections named by venue reports since the last loop.
    _woken: set[str] = field(default_factory=set, init=False)
    _positions_ms: int | None = field(default=None, init=False)  # last positions call of a round

    def __post_init__(self) -> None:
        self.instruments = dict(self.instruments)
        self._seq = itertools.count(1)
        self._wake = asyncio.Event()
        self.io = Interpreter(
            store=self.store,
            orders=self.orders,
            exchange=self.exchange,
            ops=self.ops,
            clock=self.clock,
            metrics=self.metrics,
            publisher=self.publisher,
            fills=self.fills,
        )
        self.brackets = BracketsDriver(
            io=self.io,
            naked_policy=self.naked_policy,
            unprotected_alert_ms=self.unprotected_alert_ms,
        )
        self.guardian = GuardianDriver(io=self.io, first_child=FIRST_PROTECTIVE_CHILD)
        self.native = NativeDriver(
            io=self.io, guardian=self.guardian, first_child=FIRST_PROTECTIVE_CHILD
        )

    def _driver(self, p: Protection) -> Driver:
        """The driver of `p`: its machine's, or (SPOT) the configured one before it is armed."""
        if p.market is Market.FUT:
            return self.brackets
        if isinstance(p.machine, NativeOco) or (p.machine is None and not self.oco_guardian):
            return self.native
        return self.guardian

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
            coid=coid,
            market=intent.market,
            symbol=intent.symbol,
            side=intent.side,
            inst=inst,
            intent=intent.model_dump(mode="json"),
            created_ts=now,
        )
        if intent.market is Market.FUT:
            sl, tp = intent.sl, intent.tp
            p.machine = br.Brackets(
                parent_client_order_id=coid,
                position_side=intent.side,
                entry_target_qty=intent.qty,
                sl_price=sl.price if sl else None,
                tp_price=tp.price if tp else None,
                tp_net_profit_usdt=tp.value if tp and tp.price is None else None,
                working_type=self.working_type,
                next_child=FIRST_PROTECTIVE_CHILD,
            )
        try:
            await self.store.insert("strategy_events", {"_key": doc_key(coid), **self.io.doc(p)})
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
                await self.io.persist(p)
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
            await self.io.persist(p)
        if p.final:
            self.active.pop(coid, None)
            await self._drop(coid)

    async def step_all(self) -> None:
        """One batched round: a venue snapshot per symbol, fanned out to every protection."""
        snaps = await self._snapshots()
        for coid, p in list(self.active.items()):
            try:  # `step` skips a protection an earlier step let go
                await self.step(coid, snaps.get(p.symbol, Snapshot()))
            except Exception:
                log.exception("%s: protection step failed; retried next round", coid)

    def _local_legs(self) -> dict[str, list[Protection]]:
        """Guardians watching a leg locally, by symbol."""
        out: dict[str, list[Protection]] = {}
        for p in list(self.active.values()):
            if self.guardian.watching(p):
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
                    if not self.guardian.watching(p):
                        continue
                    await self.guardian.on_price(p, book)
                    await self.io.persist(p)
                if p.final:
                    self.active.pop(p.coid, None)
                    await self._drop(p.coid)

    async def _snapshots(self) -> dict[str, Snapshot]:
        fut: set[str] = set()
        spot: set[str] = set()
        pos: set[str] = set()
        local = set(self._local_legs())
        for p in list(self.active.values()):
            if isinstance(p.machine, br.Brackets):
                algos, position = self.brackets.wants(p)
                if algos:
                    fut.add(p.symbol)
                if position:
                    pos.add(p.symbol)
            elif self.guardian.wants_orders(p) or (
                isinstance(p.machine, NativeOco) and p.machine.acked
            ):
                spot.add(p.symbol)
        snaps = {s: Snapshot() for s in fut | spot | pos | local}
        for symbol in sorted(fut):
            try:
                algos_open = await self.exchange.fetch_open_conditionals(symbol)
            except ProtectionUnsupported:
                continue  # no batch call at this venue: each order is asked by its id
            except ExchangeError as exc:
                log.info("%s: open algo orders unavailable this round: %s", symbol, exc)
                snaps[symbol].conditionals_failed = True
                continue
            snaps[symbol].conditionals = {a.client_algo_id: a for a in algos_open}
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
                # The venue's book: authoritative for a stop (the published one is only a
                # faster hint between rounds, see `price_tick`).
                snaps[symbol].book = await self.exchange.fetch_book(Market.SPOT, symbol)
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
                "PROTECTION_REARMED",
                client_order_id=coid,
                symbol=p.symbol,
                data={"machine": p.machine_name},
            )
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
        lease = await self.leases.acquire(f"{coid}:prot")
        if lease is None:
            return False
        self._leases[coid] = lease
        return True

    async def _drop(self, coid: str) -> None:
        await self.leases.release(self._leases.pop(coid, None))

    # ------------------------------------------------------------ internals
    async def _step(self, p: Protection, snap: Snapshot | None = None) -> None:
        parent = await self.io.orders.get(p.coid)
        if parent is None:
            if self.clock.now_ms() - p.created_ts > 60_000:
                p.active = False  # the intent never became durable: nothing to protect
            return
        if not p.entry_done or parent.filled_qty > p.entry_filled:
            await self._feed_entry(
                p, parent.filled_qty, parent.avg_price, parent.status.is_terminal
            )
        if p.machine is not None and not p.machine.final:  # final: `step` lets it go
            await self._driver(p).poll(p, snap)

    async def _feed_entry(
        self, p: Protection, filled: Decimal, avg: Decimal | None, done: bool
    ) -> None:
        await self._driver(p).feed_entry(p, filled, avg, done)
        p.entry_filled = max(p.entry_filled, filled)
        if done and p.entry_done_seq is None:
            p.entry_done_seq = next(self._seq)
        p.entry_done = p.entry_done or done

    def _load(self, doc: dict[str, Any]) -> Protection | None:
        inst = self.instruments.get(doc["symbol"])
        if inst is None:
            return None
        state = doc.get("state")
        return Protection(
            coid=doc["parent_client_order_id"],
            market=Market(doc["market"]),
            symbol=doc["symbol"],
            side=Side(doc["side"]),
            inst=inst,
            intent=doc["intent"],
            entry_done=bool(doc["entry_done"]),
            entry_filled=Decimal(doc["entry_filled"]),
            sent={k: int(v) for k, v in doc.get("sent", {}).items()},
            observed=dict(doc.get("observed", {})),
            created_ts=int(doc["ts"]),
            machine=MACHINES[doc["machine"]].model_validate(state) if state is not None else None,
            entry_done_seq=next(self._seq) if doc["entry_done"] else None,
        )
