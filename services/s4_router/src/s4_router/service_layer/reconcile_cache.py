"""What the reconciler keeps of the store between runs, so a run reads only what changed
(read machinery only: what a run compares and reports is :mod:`.reconciler`'s policy)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.domain.order import LIVE
from s4_router.domain.reconcile import FillView, OrderView
from tradekit.enums import Market
from tradekit.money import ZERO
from tradekit.orders import OrderRecord

RECENT_LIMIT = 5_000  # most recently updated orders examined for the window
# Orders are re-read from this long before the last read (a write committed late, replicas'
# clocks within S4_MAX_CLOCK_SKEW): every change bumps `updated_ts`.
REREAD_MARGIN_MS = 15_000
# A fill's time is the venue's: the history leaves out fills this close to the positions read.
HISTORY_SKEW_MS = 5_000
FIRST_PAGE = 256  # orders per read of the changed ones, doubled until the read reaches back


@dataclass(eq=False)
class OrderWindow:
    """One market's reconcile window as of the last run: its orders and their fills.

    A run reads only the orders updated since the last read (every write of an order bumps
    `updated_ts`), plus the working ones, and their fills; the rest is kept from earlier runs
    as compact views (bounded by RECENT_LIMIT and the window), so a run's memory does not grow
    with the window (each record is ~16 KB while read)."""

    market: Market
    orders: dict[str, OrderView] = field(default_factory=dict)
    fills: dict[str, list[FillView]] = field(default_factory=dict)  # by the order read
    read_to: int | None = None  # the `now` of the last read
    stale: set[str] = field(default_factory=set)  # orders whose fills to read again

    async def read(
        self, repo: OrdersRepository, now: int, start: int
    ) -> tuple[list[OrderView], dict[tuple[str, str], FillView]]:
        """The window's orders (working ones always, and those updated since `start`, the
        RECENT_LIMIT most recent) and their fills: read where changed, kept otherwise."""
        since = start if self.read_to is None else max(start, self.read_to - REREAD_MARGIN_MS)
        working: dict[str, OrderView] = {}
        for status in LIVE:
            for rec in await repo.find(status=status.value, market=self.market.value):
                working[rec.client_order_id] = OrderView.of(rec)
        read = dict(working)
        for rec in await self._changed(repo, since):
            read.setdefault(rec.client_order_id, OrderView.of(rec))
        self.read_to = now
        self.orders.update(read)
        # The window: the RECENT_LIMIT most recently updated within it (working ones aside).
        recent = sorted(
            (o for o in self.orders.values() if o.updated_ts >= start),
            key=lambda o: o.updated_ts,
            reverse=True,
        )[:RECENT_LIMIT]
        self.orders = {o.client_order_id: o for o in recent}
        docs = dict(working)  # a working order is in, however old
        for o in recent:
            docs.setdefault(o.client_order_id, o)
        for cid in [c for c in self.fills if c not in docs]:
            del self.fills[cid]
        fill_docs: dict[tuple[str, str], FillView] = {}
        for cid, view in docs.items():
            if cid in read or cid in self.stale or cid not in self.fills:
                got = await repo.fills(client_order_id=cid)
                if view.parent_client_order_id is None:
                    got += await repo.fills(parent_client_order_id=cid)
                self.fills[cid] = [FillView.of(f) for f in got]
            for f in self.fills[cid]:
                fill_docs[(f.order_id, f.trade_id)] = f
        self.stale.clear()
        return list(docs.values()), fill_docs

    async def _changed(self, repo: OrdersRepository, since: int) -> list[OrderRecord]:
        """Orders updated at or after `since`, newest first (read in pages that double until
        one reaches back past `since`, at most RECENT_LIMIT)."""
        limit = FIRST_PAGE
        while True:
            page = await repo.find(
                market=self.market.value,
                sort=("updated_ts", "desc"),
                limit=min(limit, RECENT_LIMIT),
            )
            if len(page) < limit or limit >= RECENT_LIMIT or page[-1].updated_ts < since:
                return [d for d in page if d.updated_ts >= since]
            limit *= 2


@dataclass(eq=False)
class PositionHistory:
    """One market's position history: the net of the store's fills that are not in the window.

    A position nets every fill its symbol ever had: that history is read once per symbol (not
    every run), then a run reads only the window's fills, and the fills of orders that leave the
    window fold into the symbol's `net`. A mismatch is judged again against the whole history
    before it is reported (:meth:`Reconciler._positions_confirmed`): a fill stored outside the
    window meanwhile (another replica's repair) can make the folded net wrong, never a finding."""

    market: Market
    net: dict[str, Decimal] = field(default_factory=dict)  # symbol -> signed net
    window: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # cid -> (symbol, net)
    read: set[str] = field(default_factory=set)  # symbols whose history this run read
    positions_ts: int = 0  # when this run read the venue's positions
    mismatched: set[str] = field(default_factory=set)  # symbols the last run found mismatched

    async def baseline(
        self,
        repo: OrdersRepository,
        symbols: list[str],
        window_fills: Iterable[FillView],
        positions_ts: int,
    ) -> dict[str, Decimal]:
        """Per symbol, the net of the store's fills outside this run's window (the window's
        own fills are in the snapshot)."""
        window: dict[str, tuple[str, Decimal]] = {}  # net per order
        for f in window_fills:
            _, q = window.get(f.client_order_id, (f.symbol, ZERO))
            window[f.client_order_id] = (f.symbol, q + f.side.sign * f.qty)
        for cid, (sym, q) in self.window.items():
            if cid not in window and sym in self.net:  # left the window: now history
                self.net[sym] += q
        self.window = window
        self.positions_ts = positions_ts
        self.read = set()
        for sym in symbols:
            if sym not in self.net:
                await self.read_symbol(repo, sym)
        return {sym: self.net[sym] for sym in symbols}

    async def read_symbol(self, repo: OrdersRepository, symbol: str) -> None:
        """The whole history of `symbol`'s fills, net of the window's (once per symbol, and
        to confirm a mismatch). A fill outside the window that is younger than the positions
        read is of an order stored after the window's read (an older order with a new fill is
        in the window: a fill updates its order): the position does not hold it yet, and the
        next run's window will."""
        young = self.positions_ts - HISTORY_SKEW_MS
        net = ZERO
        for f in await repo.fills(symbol=symbol, market=self.market.value):
            if f.client_order_id not in self.window and f.ts_fill < young:
                net += f.side.sign * f.qty
        self.net[symbol] = net
        self.read.add(symbol)
