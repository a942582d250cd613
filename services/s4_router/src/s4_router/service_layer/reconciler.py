"""Reconciliation loop: venue vs store, on start and every `S4_RECONCILE_INTERVAL_MS`.

One run, per market (SPOT, FUT):

1. gather a :class:`~s4_router.domain.reconcile.Snapshot`: store orders that are not final or
   were updated within `S4_RECONCILE_WINDOW_MS`, their fills (FUT: positions net from the whole
   history of their symbols' fills — see :mod:`.reconcile_cache`, which keeps both between
   runs); the venue's open orders, open conditional (algo) orders, positions (FUT) and trades
   since the window start for the symbols with recent activity;
2. :func:`~s4_router.domain.reconcile.reconcile` the snapshot (pure);
3. publish each *new* finding once per (kind, client order id) on `alerts` as
   `RECONCILE_<KIND>` and count it in `router_reconcile_findings_total{kind}` (a finding that
   disappears and comes back is reported again);
4. repair what is safe: MISSING_FILL → insert the venue's trade as a fill (the unique index
   `(venue, order_id, trade_id)` dedups); STATUS_DRIFT → the existing recoveries
   (`Recovery.recover`, `ProtectionService.recover`, or a wake of the running execution),
   which re-read the order at the venue; ORPHAN_VENUE_ORDER / STALE_PROTECTIVE → cancelled
   only with `S4_RECONCILE_CANCEL_ORPHANS=true`; the invariant findings (filled qty, average
   price, position) are reported, never "fixed" by guessing;
5. write a `strategy_events` RECONCILE summary (the first run after start, and every run with
   findings) and keep the last run for `/health`.

Working orders updated within the last `settle_ms` are not checked for drift: their execution
is about to read them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import (
    ConditionalOrder,
    ExchangeError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    OrderNotFound,
    ProtectionUnsupported,
)
from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.domain.order import LIVE
from s4_router.domain.reconcile import (
    Finding,
    FindingKind,
    OrderView,
    Snapshot,
    VenueOrderView,
    VenueTradeView,
    reconcile,
)
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.fill_book import FillBook, fill_of
from s4_router.service_layer.protection import PROTECTIVE_ROLES, ProtectionService
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.reconcile_cache import OrderWindow, PositionHistory
from s4_router.service_layer.router import OrderRouter
from s4_router.service_layer.venue_ops import VenueOps
from svckit.clock import Clock
from svckit.errors import DuplicateKey
from svckit.store.base import DocumentStore
from tradekit.enums import Market, OrderStatus
from tradekit.ids import parent_of
from tradekit.instrument import Instrument
from tradekit.money import ZERO

log = logging.getLogger(__name__)

S = OrderStatus
_CRITICAL = frozenset(
    {FindingKind.FILLED_QTY_MISMATCH, FindingKind.POSITION_MISMATCH}
)  # else warning


@dataclass
class _Venue:
    """What one market's gather saw at the venue (for the repairs)."""

    open: dict[str, tuple[ExchangeOrder | None, ConditionalOrder | None]] = field(
        default_factory=dict
    )
    trades: dict[tuple[str, str], ExchangeTrade] = field(default_factory=dict)
    orders: dict[str, OrderView] = field(default_factory=dict)  # store orders by client id


@dataclass
class RunReport:
    ts: int
    findings: list[Finding]
    new: list[Finding]
    repaired: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "last_ts": self.ts,
            "findings": len(self.findings),
            "by_kind": dict(Counter(f.kind.value for f in self.findings)),
            "new": len(self.new),
            "repaired": self.repaired,
            "cancelled": self.cancelled,
            "errors": self.errors,
        }


# Findings about one order's record against its fills: re-read before they are reported.
_ORDER_INVARIANTS = frozenset({FindingKind.FILLED_QTY_MISMATCH, FindingKind.AVG_PRICE_MISMATCH})


@dataclass(kw_only=True, eq=False)
class Reconciler:
    store: DocumentStore  # strategy_events (the RECONCILE summaries)
    orders: OrdersRepository
    exchange: ExchangePort
    ops: VenueOps
    clock: Clock
    metrics: RouterMetrics
    publisher: Publisher
    instruments: dict[str, Instrument]
    fills: FillBook
    router: OrderRouter | None = None
    protection: ProtectionService | None = None
    interval_ms: int = 30_000  # between the periodic runs (`run`)
    window_ms: int = 3_600_000
    cancel_orphans: bool = False
    settle_ms: int = 2_000
    outstanding: set[tuple[str, str]] = field(default_factory=set, init=False)
    last: RunReport | None = field(default=None, init=False)
    runs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._history = {m: PositionHistory(m) for m in Market}
        self._windows = {m: OrderWindow(m) for m in Market}

    # ---- one run ------------------------------------------------------------------------------
    async def run_once(self) -> RunReport:
        now = self.clock.now_ms()
        report = RunReport(ts=now, findings=[], new=[])
        seen: set[tuple[str, str]] = set()
        for market in (Market.SPOT, Market.FUT):
            if not any(market in i.markets for i in self.instruments.values()):
                continue
            try:
                snap, venue = await self._gather(market, now)
            except ExchangeError as exc:
                report.errors.append(f"{market.value}: {exc}")
                log.warning("reconcile %s: venue unavailable: %s", market.value, exc)
                continue
            found = await self._positions_confirmed(market, reconcile(snap), snap)
            findings = await self._confirmed(market, found, snap)
            report.findings += findings
            for f in findings:
                key = (f.kind.value, f"{market.value}:{f.client_order_id or f.symbol}")
                seen.add(key)
                if key not in self.outstanding:
                    report.new.append(f)
                    await self._report(market, f)
            await self._repair(market, findings, venue, report)
        # Markets that could not be read keep their outstanding findings.
        failed = {e.split(":", 1)[0] for e in report.errors}
        self.outstanding = seen | {k for k in self.outstanding if k[1].split(":", 1)[0] in failed}
        if report.findings or self.runs == 0:
            await self._summary(report)
        self.runs += 1
        self.last = report
        return report

    async def _confirmed(
        self, market: Market, findings: list[Finding], snap: Snapshot
    ) -> list[Finding]:
        """The snapshot is not atomic: an order read before a fill's booking finished and the
        venue's trades read after it disagree for a moment. An order invariant is reported only
        if the order's record has not moved since the snapshot (if it has, the next run judges
        the record as it is then). A missing fill is looked for once more in the store: the
        fills of an order that has not changed are kept from an earlier run (see `OrderWindow`),
        and another replica may have repaired it since."""
        taken = {o.client_order_id: o for o in snap.store_orders}
        out: list[Finding] = []
        for f in findings:
            if f.kind is FindingKind.MISSING_FILL and f.client_order_id is not None:
                stored = await self.orders.fills(client_order_id=f.client_order_id)
                if f.detail.get("trade_id") in {x.trade_id for x in stored}:
                    self._stale(market, f.client_order_id)
                    continue
            if f.kind in _ORDER_INVARIANTS and f.client_order_id is not None:
                fresh = await self.orders.get(f.client_order_id)
                if fresh is None or OrderView.of(fresh) != taken.get(f.client_order_id):
                    log.info("reconcile: %s moved while read; judged next run", f.client_order_id)
                    continue
            out.append(f)
        return out

    def _stale(self, market: Market, *cids: str | None) -> None:
        """Read these orders' fills again next run."""
        self._windows[market].stale.update(c for c in cids if c)

    async def _positions_confirmed(
        self, market: Market, findings: list[Finding], snap: Snapshot
    ) -> list[Finding]:
        """A position mismatch against a folded history is judged again against the whole
        history, read now (see :class:`PositionHistory`), and reported only when the run before
        found one on that symbol too: the venue's position and the store's fills are read one
        after the other while orders fill, so a single run can catch a trade on one side only
        (a mismatch that lasts is reported one run later than it could be)."""
        h = self._history[market]
        suspects = {
            f.symbol
            for f in findings
            if f.kind is FindingKind.POSITION_MISMATCH and f.symbol not in h.read
        }
        if suspects:
            for sym in sorted(suspects):
                await h.read_symbol(self.orders, sym)
            baseline = {**snap.position_baseline, **{s: h.net[s] for s in suspects}}
            findings = reconcile(replace(snap, position_baseline=baseline))
        mismatched = {f.symbol for f in findings if f.kind is FindingKind.POSITION_MISMATCH}
        before, h.mismatched = h.mismatched, mismatched
        return [
            f for f in findings if f.kind is not FindingKind.POSITION_MISMATCH or f.symbol in before
        ]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_ms / 1000)
            if stop.is_set():
                return
            try:
                await self.run_once()
            except Exception:
                log.exception("reconciliation run failed")

    def health(self) -> dict[str, Any]:
        if self.last is None:
            return {"last_ts": None, "findings": None}
        return self.last.summary()

    # ---- gather -------------------------------------------------------------------------------
    async def _gather(self, market: Market, now: int) -> tuple[Snapshot, _Venue]:
        since = now - self.window_ms
        venue = _Venue()
        # FUT positions before the store: a trade in a position read now is of an order the
        # store had before its read below (S4 stores a child before sending it), so the
        # window's fills or the venue's trades of known orders account for it.
        positions: dict[str, Decimal] = {}
        positions_ts = self.clock.now_ms()
        if market is Market.FUT:
            with contextlib.suppress(ProtectionUnsupported):
                for p in await self.ops.call(lambda: self.exchange.fetch_positions()):
                    positions[p.symbol] = positions.get(p.symbol, ZERO) + p.qty
        docs, fill_docs = await self._windows[market].read(self.orders, now, since)
        venue.orders = {d.client_order_id: d for d in docs}

        # Venue: open orders (+ open conditionals on FUT), positions.
        open_views: list[VenueOrderView] = []
        for o in await self.ops.call(lambda: self.exchange.fetch_open_orders(market)):
            venue.open[o.client_order_id] = (o, None)
            open_views.append(VenueOrderView.of(o))
        baseline: dict[str, Decimal] = {}  # FUT: the history of the positions' fills
        if market is Market.FUT:
            with contextlib.suppress(ProtectionUnsupported):
                for a in await self.ops.call(lambda: self.exchange.fetch_open_conditionals()):
                    venue.open[a.client_algo_id] = (None, a)
                    open_views.append(
                        VenueOrderView(
                            a.client_algo_id,
                            a.algo_id,
                            a.symbol,
                            S.ACCEPTED,  # open: NEW, or TRIGGERED (its market order is on its way)
                            ZERO,
                            reduce_only=a.reduce_only or a.close_position,
                        )
                    )
            # Positions net over the whole history of their symbols' fills.
            for sym in [s for s, q in positions.items() if q != 0] + sorted(
                {d.symbol for d in docs}
            ):
                positions.setdefault(sym, ZERO)
            baseline = await self._history[market].baseline(
                self.orders, list(positions), fill_docs.values(), positions_ts
            )

        # Venue's view of working orders that are not open there any more (drift candidates).
        venue_orders: dict[str, VenueOrderView] = {v.client_order_id: v for v in open_views}
        for d in docs:
            cid = d.client_order_id
            if (
                cid in venue.open
                or d.role in PROTECTIVE_ROLES
                or d.status not in LIVE
                or d.status is S.NEW
                or d.updated_ts > now - self.settle_ms
                or (d.parent_client_order_id is None and not d.venue_order_id)
            ):
                continue
            try:
                o = await self.ops.fetch(market, d.symbol, cid)
            except OrderNotFound:
                continue
            venue_orders[cid] = VenueOrderView.of(o)

        # Trades since the window start, for symbols with recent activity.
        symbols = sorted({d.symbol for d in docs} | {v.symbol for v in open_views})
        trade_views: list[VenueTradeView] = []
        for sym in symbols:
            for t in await self.ops.call(
                lambda sym=sym: self.exchange.fetch_my_trades(market, sym, since)  # type: ignore[misc]
            ):
                venue.trades[(t.venue_order_id, t.trade_id)] = t
                trade_views.append(VenueTradeView.of(t))

        insts = {s: self.instruments[s] for s in symbols + list(positions) if s in self.instruments}
        snap = Snapshot(
            store_orders=docs,
            store_fills=list(fill_docs.values()),
            venue_open=open_views,
            venue_orders=venue_orders,
            venue_trades=trade_views,
            positions=positions,
            tick={s: i.tickSize for s, i in insts.items()},
            step={s: i.stepSize for s, i in insts.items()},
            position_baseline=baseline,
            positions_ts=positions_ts if market is Market.FUT else None,
        )
        return snap, venue

    # ---- act ----------------------------------------------------------------------------------
    async def _report(self, market: Market, f: Finding) -> None:
        self.metrics.reconcile_findings.labels(f.kind.value).inc()
        what = f.client_order_id or f.symbol
        await self.publisher.alert(
            f"RECONCILE_{f.kind.value}",
            f"{market.value} {f.symbol} {what}: {f.kind.value} {f.detail}",
            severity="critical" if f.kind in _CRITICAL else "warning",
            data={"market": market.value, **f.data()},
        )

    async def _repair(
        self, market: Market, findings: Iterable[Finding], venue: _Venue, report: RunReport
    ) -> None:
        drift = False
        for f in findings:
            try:
                if f.kind is FindingKind.MISSING_FILL:
                    report.repaired += await self._insert_fill(market, f, venue)
                elif f.kind is FindingKind.STATUS_DRIFT:
                    drift = True
                    if self.router is not None and f.client_order_id:
                        self.router.manager.on_order_update(f.client_order_id)  # wakes its parent
                elif (
                    f.kind in (FindingKind.ORPHAN_VENUE_ORDER, FindingKind.STALE_PROTECTIVE)
                    and self.cancel_orphans
                ):
                    report.cancelled += await self._cancel(market, f, venue)
            except ExchangeError as exc:
                report.errors.append(f"{f.kind.value} {f.client_order_id}: {exc}")
        if drift:
            # The existing recoveries re-read the orders at the venue and finish them.
            if self.router is not None:
                report.repaired += await self.router.recovery.recover()
            if self.protection is not None:
                report.repaired += await self.protection.recover()

    async def _insert_fill(self, market: Market, f: Finding, venue: _Venue) -> int:
        cid = f.client_order_id or ""
        t = next(
            (
                t
                for t in venue.trades.values()
                if t.client_order_id == cid and t.trade_id == f.detail.get("trade_id")
            ),
            None,
        )
        if t is None:
            return 0
        doc = venue.orders.get(cid)
        parsed = parent_of(cid)
        parent = (doc.parent_client_order_id if doc else None) or (parsed[0] if parsed else None)
        role = doc.role if doc is not None else None
        fill = fill_of(
            t, venue=self.exchange.venue, cid=cid, parent=parent, market=market, role=role
        )
        # The one booking path (over-fill check against the order's quantity when the order is
        # in the window; a duplicate — booked meanwhile by its execution — counts 0).
        ledgers = [await self.orders.ledger(cid, doc.qty)] if doc is not None else []
        booked = await self.fills.book(fill, *ledgers)
        self._stale(market, cid, parent)
        return 1 if booked.stored else 0

    async def _cancel(self, market: Market, f: Finding, venue: _Venue) -> int:
        order, algo = venue.open.get(f.client_order_id or "", (None, None))
        try:
            if algo is not None:
                await self.ops.call(
                    lambda: self.exchange.cancel_conditional(algo.symbol, algo_id=algo.algo_id)
                )
            elif order is not None:
                await self.ops.call(
                    lambda: self.exchange.cancel_order(
                        market, order.symbol, venue_order_id=order.venue_order_id
                    )
                )
            else:
                return 0
        except OrderNotFound:
            return 0  # gone meanwhile
        await self.publisher.event(
            "RECONCILE_CANCELLED",
            client_order_id=f.client_order_id,
            symbol=f.symbol,
            data={"kind": f.kind.value, "market": market.value, **f.detail},
        )
        return 1

    async def _summary(self, report: RunReport) -> None:
        data = report.summary()
        data["details"] = [{"kind": f.kind.value, **f.data()} for f in report.findings[:100]]
        with contextlib.suppress(DuplicateKey):
            await self.store.insert(
                "strategy_events",
                {
                    "_key": f"reconcile:{report.ts}:{self.runs}",
                    "kind": "RECONCILE",
                    "ts": report.ts,
                    "data": data,
                },
            )
        await self.publisher.event("RECONCILE", client_order_id=None, symbol=None, data=data)
