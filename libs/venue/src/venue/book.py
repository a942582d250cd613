"""Per-symbol L2 order book: market liquidity by price level plus our own resting orders.

The market levels (price → quantity) come from the price process (synthetic or replayed) and
are replaced at every market step; taker orders consume them within a step (liquidity refills
at the next step, as it would after other participants react). Our own resting orders sit in a
separate price-time queue: they are what the matching engine fills when the market trades
through their price. A public depth view merges both, as the real venue's book would.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradekit.enums import Side
from tradekit.money import ZERO
from venue.models import BookView, VenueOrder

Level = tuple[Decimal, Decimal]


def _best(side: Side, prices: Iterable[Decimal | None]) -> Decimal | None:
    """The best of `prices` for a resting order on `side` (BUY: the highest); None if none."""
    known = [p for p in prices if p is not None]
    return (max(known) if side is Side.BUY else min(known)) if known else None


def crosses(taker_side: Side, limit: Decimal | None, level_price: Decimal) -> bool:
    """Can a taker on `taker_side` with `limit` (None = market) trade at `level_price`?"""
    if limit is None:
        return True
    return level_price <= limit if taker_side is Side.BUY else level_price >= limit


class OrderBook:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self._own: dict[Side, list[VenueOrder]] = {Side.BUY: [], Side.SELL: []}

    # ---- market levels ------------------------------------------------------------------------
    def replace_levels(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.bids = {p: q for p, q in bids if q > 0}
        self.asks = {p: q for p, q in asks if q > 0}

    def _side_levels(self, side: Side) -> dict[Decimal, Decimal]:
        """Resting liquidity on `side` (BUY = bids)."""
        return self.bids if side is Side.BUY else self.asks

    def levels(self, side: Side, depth: int | None = None) -> list[Level]:
        """Market levels of `side`, best first."""
        book = self._side_levels(side)
        ordered = sorted(book.items(), key=lambda kv: kv[0], reverse=side is Side.BUY)
        return ordered if depth is None else ordered[:depth]

    def best(self, side: Side) -> Decimal | None:
        return _best(side, self._side_levels(side))

    def qty_at(self, side: Side, price: Decimal) -> Decimal:
        return self._side_levels(side).get(price, ZERO)

    def plan_take(self, taker_side: Side, qty: Decimal, limit: Decimal | None) -> list[Level]:
        """The fills a taker would get walking the opposite side (best first), without mutating.
        Less than `qty` in total when the book runs out or the limit stops the walk."""
        out: list[Level] = []
        left = qty
        for price, avail in self.levels(taker_side.opposite):
            if left <= 0 or not crosses(taker_side, limit, price):
                break
            take = min(left, avail)
            out.append((price, take))
            left -= take
        return out

    def consume(self, taker_side: Side, fills: Iterable[Level]) -> None:
        """Remove liquidity a taker (ours, or one of our resting orders being crossed) took."""
        book = self._side_levels(taker_side.opposite)
        for price, qty in fills:
            left = book.get(price, ZERO) - qty
            if left > 0:
                book[price] = left
            else:
                book.pop(price, None)

    # ---- our resting orders -------------------------------------------------------------------
    def add_own(self, order: VenueOrder) -> None:
        self._own[order.side].append(order)

    def remove_own(self, order: VenueOrder) -> None:
        queue = self._own[order.side]
        if order in queue:
            queue.remove(order)

    def own(self, side: Side) -> list[VenueOrder]:
        """Our resting orders on `side` in priority order: best price first, then oldest."""
        sign = -1 if side is Side.BUY else 1
        return sorted(self._own[side], key=lambda o: (sign * (o.price or ZERO), o.seq))

    def best_with_own(self, side: Side) -> Decimal | None:
        """Best price on `side` including our own resting orders (what post-only must not cross)."""
        return _best(side, (self.best(side), *(o.price for o in self._own[side])))

    # ---- views --------------------------------------------------------------------------------
    def view(self, ts: int, depth: int = 20) -> BookView:
        """Depth snapshot with our own resting quantity merged into the levels."""

        def merged(side: Side) -> tuple[Level, ...]:
            agg = dict(self._side_levels(side))
            for o in self._own[side]:
                if o.price is not None:
                    agg[o.price] = agg.get(o.price, ZERO) + o.remaining
            ordered = sorted(agg.items(), key=lambda kv: kv[0], reverse=side is Side.BUY)
            return tuple(ordered[:depth])

        return BookView(symbol=self.symbol, ts=ts, bids=merged(Side.BUY), asks=merged(Side.SELL))
