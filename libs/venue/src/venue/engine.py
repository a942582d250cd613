"""Matching engine for one market kind (spot or USDⓈ-M futures): order life cycle and fills.

What it does, in Binance's terms:

* MARKET walks the opposite side level by level (partial fills at several prices); when the
  book runs out the remainder is EXPIRED.
* LIMIT crosses immediately up to its price (taker), the rest rests (maker) with price-time
  priority among our orders and a queue position behind the market quantity already at that
  price. It fills later when a market trade prints at/through it (eating the queue ahead first)
  or when the market's opposite side moves through its price.
* Post-only (spot LIMIT_MAKER, futures LIMIT+GTX) is rejected if it would cross; IOC expires
  the unfilled rest; FOK fills entirely or not at all (spot: EXPIRED, futures: -5021).
* Self-trade prevention EXPIRE_MAKER: a taker never trades with our own resting orders; those
  it would cross are expired first (Binance's default STP mode on spot).
* Rejected orders raise a :class:`~venue.errors.VenueError` and are not recorded (a rejected
  order is not queryable on Binance either).
* Spot OCO order lists (one leg fills, even partially, or triggers ⇒ the other is cancelled).

Prices and quantities are exact Decimals; fees are ``rate × notional`` (or × qty when the fee is
charged in the base asset) without rounding, so fills can be checked by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from decimal import Decimal

from svckit.clock import Clock
from tradekit.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from tradekit.instrument import Instrument
from tradekit.money import ZERO
from venue import errors
from venue.accounts import Account
from venue.book import OrderBook, crosses
from venue.models import (
    ListStatus,
    OrderList,
    Trade,
    TradePrint,
    VenueOrder,
)

ReportFn = Callable[[str, VenueOrder, Trade | None], None]
ListReportFn = Callable[[OrderList], None]

_LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT})
_SPOT_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.LIMIT_MAKER})
_FUT_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT})


class MatchingEngine:
    """All order books, orders and trades of one market kind (spot or futures)."""

    def __init__(
        self,
        market: Market,
        *,
        clock: Clock,
        account: Account,
        instruments: dict[str, Instrument],
        report: ReportFn | None = None,
        list_report: ListReportFn | None = None,
        first_order_id: int = 1,
        first_trade_id: int = 1,
        history_max: int | None = None,
    ) -> None:
        self.market = market
        self.is_futures = market is Market.FUT
        self.clock = clock
        self.account = account
        self.instruments = instruments
        self.books: dict[str, OrderBook] = {}
        self.orders: dict[int, VenueOrder] = {}
        # Orders not yet terminal, in placement order: what open_orders(), stale reduce-only
        # checks and stop triggers scan (never the whole history).
        self._open: dict[int, VenueOrder] = {}
        self.trades: list[Trade] = []
        self.order_lists: dict[int, OrderList] = {}
        self._by_coid: dict[str, int] = {}
        # Bounded ledger (None: keep everything, as the proof's facade does): beyond
        # `history_max` closed orders the oldest are forgotten, and the trades beyond it too,
        # as a real venue archives old orders ("Order does not exist"). Open orders stay.
        self.history_max = history_max
        self._closed: dict[int, None] = {}  # closed order ids, oldest first
        self._order_ids = itertools.count(first_order_id)
        self._trade_ids = itertools.count(first_trade_id)
        self._list_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._report = report or (lambda _x, _o, _t: None)
        self._list_report = list_report or (lambda _l: None)
        self.last_price: dict[str, Decimal] = {}

    # ---- helpers ------------------------------------------------------------------------------
    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None or self.market not in inst.markets:
            raise errors.VenueError(errors.BAD_SYMBOL, "Invalid symbol.")
        return inst

    def book(self, symbol: str) -> OrderBook:
        self.instrument(symbol)
        if symbol not in self.books:
            self.books[symbol] = OrderBook(symbol)
        return self.books[symbol]

    def _reference_price(self, symbol: str, book: OrderBook) -> Decimal | None:
        bid, ask = book.best(Side.BUY), book.best(Side.SELL)
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return self.last_price.get(symbol) or bid or ask

    # ---- validation ---------------------------------------------------------------------------
    def _validate(
        self,
        inst: Instrument,
        book: OrderBook,
        type_: OrderType,
        qty: Decimal,
        price: Decimal | None,
        tif: TimeInForce | None,
        reduce_only: bool,
    ) -> None:
        fut = self.is_futures
        if type_ not in (_FUT_TYPES if fut else _SPOT_TYPES):
            raise errors.VenueError(-1116, "Invalid orderType.")
        if qty <= 0:
            raise errors.VenueError(errors.INVALID_PARAM, "Parameter 'quantity' was invalid.")
        if type_ in _LIMIT_TYPES and price is None:
            raise errors.VenueError(
                errors.INVALID_PARAM, "Mandatory parameter 'price' was not sent, was empty/null."
            )
        if price is not None and price <= 0:
            raise errors.VenueError(errors.INVALID_PARAM, "Parameter 'price' was invalid.")
        if tif is TimeInForce.GTX and not fut:
            raise errors.VenueError(errors.INVALID_TIF, "Invalid timeInForce.")
        if not inst.is_on_step(qty) or qty < inst.minQty:
            raise errors.VenueError(
                errors.BAD_PRECISION if fut else errors.FILTER_FAILURE,
                "Precision is over the maximum defined for this asset."
                if fut
                else "Filter failure: LOT_SIZE",
            )
        if inst.maxQty is not None and qty > inst.maxQty:
            raise errors.VenueError(errors.FILTER_FAILURE, "Filter failure: LOT_SIZE")
        if price is not None and not inst.is_on_tick(price):
            raise errors.VenueError(
                errors.PRICE_NOT_ON_TICK if fut else errors.FILTER_FAILURE,
                "Price not increased by tick size." if fut else "Filter failure: PRICE_FILTER",
            )
        ref = price if price is not None else self._reference_price(inst.symbol, book)
        if ref is not None and qty * ref < inst.minNotional and not reduce_only:
            if fut:
                raise errors.VenueError(
                    -4164,
                    f"Order's notional must be no smaller than {inst.minNotional} "
                    "(unless you choose reduce only).",
                )
            raise errors.VenueError(errors.FILTER_FAILURE, "Filter failure: NOTIONAL")

    def _check_duplicate(self, coid: str) -> None:
        prior = self._by_coid.get(coid)
        if prior is not None and self.orders[prior].is_open:
            if self.is_futures:
                raise errors.VenueError(errors.DUPLICATE_CLIENT_ORDER_ID, errors.MSG_FUT_DUPLICATE)
            raise errors.VenueError(errors.NEW_ORDER_REJECTED, errors.MSG_DUPLICATE)

    def _check_post_only(self, book: OrderBook, side: Side, price: Decimal) -> None:
        best = book.best_with_own(side.opposite)
        if best is None or not crosses(side, price, best):
            return
        if self.is_futures:
            raise errors.VenueError(errors.POST_ONLY_REJECTED, errors.MSG_FUT_POST_ONLY)
        raise errors.VenueError(errors.NEW_ORDER_REJECTED, errors.MSG_WOULD_TAKE)

    # ---- placing ------------------------------------------------------------------------------
    def place(
        self,
        symbol: str,
        side: Side,
        type: OrderType,  # Binance's parameter name
        qty: Decimal,
        *,
        price: Decimal | None = None,
        time_in_force: TimeInForce | None = None,
        client_order_id: str | None = None,
        reduce_only: bool = False,
    ) -> VenueOrder:
        """Place one order; returns the venue's record after immediate matching."""
        inst = self.instrument(symbol)
        book = self.book(symbol)
        if type is OrderType.LIMIT and time_in_force is None:
            time_in_force = TimeInForce.GTC
        if type is OrderType.MARKET:
            price = None
            time_in_force = None
        if reduce_only and not self.is_futures:
            raise errors.VenueError(-1106, "Parameter 'reduceOnly' sent when not required.")
        self._validate(inst, book, type, qty, price, time_in_force, reduce_only)
        if client_order_id is not None:
            self._check_duplicate(client_order_id)
        post_only = type is OrderType.LIMIT_MAKER or time_in_force is TimeInForce.GTX
        if post_only and price is not None:
            self._check_post_only(book, side, price)
        order = self._new_order(
            inst, side, type, qty, price, time_in_force, client_order_id, reduce_only, post_only
        )
        if reduce_only and self.account.fill_cap(order) == 0:  # -2022: would open or increase
            raise errors.VenueError(errors.REDUCE_ONLY_REJECT, errors.MSG_REDUCE_ONLY)
        plan = book.plan_take(side, qty, price) if not post_only else []
        if time_in_force is TimeInForce.FOK and sum((q for _, q in plan), ZERO) < qty:
            if self.is_futures:
                raise errors.VenueError(errors.FOK_REJECTED, errors.MSG_FUT_FOK)
            self._register(order)
            self._report("NEW", order, None)
            self._end(order, OrderStatus.EXPIRED, "FOK could not fill entirely")
            return order.snapshot()
        est_notional = (
            qty * price
            if price is not None
            else sum((p * q for p, q in plan), ZERO)
            or qty * (self._reference_price(symbol, book) or ZERO)
        )
        self.account.reserve(order, inst, est_notional)
        self._register(order)
        self._report("NEW", order, None)
        self._execute(order, book, plan)
        return order.snapshot()

    def _new_order(
        self,
        inst: Instrument,
        side: Side,
        type_: OrderType,
        qty: Decimal,
        price: Decimal | None,
        tif: TimeInForce | None,
        coid: str | None,
        reduce_only: bool,
        post_only: bool,
        *,
        stop_price: Decimal | None = None,
    ) -> VenueOrder:
        now = self.clock.now_ms()
        oid = next(self._order_ids)
        return VenueOrder(
            order_id=oid,
            client_order_id=coid or f"venue-{self.market.value.lower()}-{oid}",
            market=self.market,
            symbol=inst.symbol,
            side=side,
            type=type_,
            time_in_force=tif,
            qty=qty,
            price=price,
            status=OrderStatus.ACCEPTED,
            created_ts=now,
            updated_ts=now,
            stop_price=stop_price,
            reduce_only=reduce_only,
            post_only=post_only,
        )

    def _register(self, order: VenueOrder) -> None:
        self.orders[order.order_id] = order
        if order.is_open:
            self._open[order.order_id] = order
        self._by_coid[order.client_order_id] = order.order_id

    def _execute(
        self, order: VenueOrder, book: OrderBook, plan: list[tuple[Decimal, Decimal]] | None = None
    ) -> None:
        """Take what crosses now, then rest or expire the remainder per type/TIF."""
        if plan is None:
            plan = (
                [] if order.post_only else book.plan_take(order.side, order.remaining, order.price)
            )
        # STP covers our own orders the taker would meet: up to its limit, or (market) up to
        # the worst level it walks to. Post-only orders never cross (checked before).
        worst = order.price if order.price is not None else (plan[-1][0] if plan else None)
        if worst is not None and not order.post_only:
            for maker in book.own(order.side.opposite):  # STP EXPIRE_MAKER
                if maker.price is not None and crosses(order.side, worst, maker.price):
                    self._end(maker, OrderStatus.EXPIRED, "self-trade prevention (EXPIRE_MAKER)")
        for price, qty in plan:
            if not order.is_open:
                break
            trade = self._fill(order, price, qty, is_maker=False)
            if trade is None:
                break
            book.consume(order.side, [(price, trade.qty)])
        if not order.is_open:
            return
        if order.type is OrderType.MARKET:
            # Binance: a market order that exhausts the book expires the rest.
            self._end(order, OrderStatus.EXPIRED, "insufficient liquidity")
        elif order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._end(order, OrderStatus.EXPIRED, "IOC remainder")
        elif order.reduce_only and self.account.fill_cap(order) == 0:
            self._end(order, OrderStatus.EXPIRED, "reduce-only: position closed")
        else:
            assert order.price is not None  # resting orders are limit orders
            order.seq = next(self._seq)
            order.queue_ahead = book.qty_at(order.side, order.price)
            book.add_own(order)

    def _fill(
        self, order: VenueOrder, price: Decimal, qty: Decimal, *, is_maker: bool
    ) -> Trade | None:
        cap = self.account.fill_cap(order)
        if cap is not None:
            qty = min(qty, cap)
        qty = min(qty, order.remaining)
        inst = self.instruments[order.symbol]
        # Venues execute whole lots only: flow that would fill a fraction of a step fills less.
        qty = (qty // inst.stepSize) * inst.stepSize
        if qty <= 0:
            return None
        now = self.clock.now_ms()
        quote = price * qty
        fee_asset = self.account.fee_asset(inst, order.side)
        rate = inst.maker_fee if is_maker else inst.taker_fee
        fee = rate * (qty if fee_asset == inst.base_asset else quote)
        trade = Trade(
            trade_id=next(self._trade_ids),
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            market=self.market,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=quote,
            fee=fee,
            fee_asset=fee_asset,
            is_maker=is_maker,
            ts=now,
        )
        order.filled_qty += qty
        order.cum_quote += quote
        order.fee += fee
        order.trades.append(trade)
        order.updated_ts = now
        order.status = OrderStatus.FILLED if order.remaining <= 0 else OrderStatus.PARTIALLY_FILLED
        self.trades.append(trade)
        if self.history_max is not None and len(self.trades) > self.history_max * 11 // 10:
            del self.trades[: len(self.trades) - self.history_max]  # in batches: amortised
        self.last_price[order.symbol] = price
        self.account.on_fill(order, inst, trade)
        self._report("TRADE", order, trade)
        if order.status is OrderStatus.FILLED:
            self._release(order)
        if order.order_list_id >= 0:
            self._cancel_sibling(order)
            self._update_list(order.order_list_id)
        if self.is_futures:  # reduce-only orders left with nothing to reduce expire
            for o in list(self.open_orders(order.symbol)):
                if o.reduce_only and o.order_id != order.order_id and self.account.fill_cap(o) == 0:
                    self._end(o, OrderStatus.EXPIRED, "reduce-only: position closed")
        return trade

    def _release(self, order: VenueOrder) -> None:
        if order.status.is_terminal:
            self._open.pop(order.order_id, None)
            # Forget the oldest closed orders (OCO legs stay: their list refers to them by id).
            if self.history_max is not None and order.order_list_id < 0:
                self._closed[order.order_id] = None
                while len(self._closed) > self.history_max:
                    oid = next(iter(self._closed))
                    del self._closed[oid]
                    old = self.orders.pop(oid, None)
                    if old is not None and self._by_coid.get(old.client_order_id) == oid:
                        del self._by_coid[old.client_order_id]
        self.books[order.symbol].remove_own(order)
        self.account.release(order, self.instruments[order.symbol])

    def _end(self, order: VenueOrder, status: OrderStatus, reason: str | None = None) -> None:
        """Terminal transition (CANCELED / EXPIRED) with its report."""
        order.status = status
        order.expire_reason = reason
        order.updated_ts = self.clock.now_ms()
        self._release(order)
        self._report(status.value, order, None)
        if order.order_list_id >= 0:
            self._update_list(order.order_list_id)

    # ---- cancel / query -------------------------------------------------------------------
    def _lookup(
        self, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> VenueOrder | None:
        if order_id is None and client_order_id is None:
            raise errors.VenueError(
                errors.INVALID_PARAM,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        self.instrument(symbol)
        if order_id is not None:
            order = self.orders.get(order_id)
        else:
            assert client_order_id is not None
            oid = self._by_coid.get(client_order_id)
            order = self.orders.get(oid) if oid is not None else None
        if order is None or order.symbol != symbol:
            return None
        if client_order_id is not None and order.client_order_id != client_order_id:
            return None
        return order

    def get(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        order = self._lookup(symbol, order_id, client_order_id)
        if order is None:
            raise errors.VenueError(errors.NO_SUCH_ORDER, errors.MSG_NO_SUCH_ORDER)
        return order.snapshot()

    def cancel(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        """Cancel an open order; a finished or unknown one answers -2011 like Binance. Cancelling
        one leg of an OCO cancels the whole list."""
        order = self._lookup(symbol, order_id, client_order_id)
        if order is None or not order.is_open:
            raise errors.VenueError(errors.CANCEL_REJECTED, errors.MSG_UNKNOWN_ORDER)
        if order.order_list_id >= 0:
            self._cancel_legs(self.order_lists[order.order_list_id], but=order)
        self._end(order, OrderStatus.CANCELED)
        return order.snapshot()

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [
            o for o in self._open.values() if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    def my_trades(self, symbol: str, since_ms: int | None = None) -> list[Trade]:
        self.instrument(symbol)
        return [
            t for t in self.trades if t.symbol == symbol and (since_ms is None or t.ts >= since_ms)
        ]

    # ---- the market moves -----------------------------------------------------------------
    def on_market_step(
        self, symbol: str, prints: Iterable[TradePrint], last_price: Decimal | None = None
    ) -> None:
        """Match our resting orders after the market moved: prints first (in tape order), then
        whatever the new book crosses; then spot stop legs against the last price."""
        book = self.book(symbol)
        for side in (Side.BUY, Side.SELL):
            for o in book.own(side):
                # The queue ahead of us only shrinks: people ahead cancel or get filled.
                assert o.price is not None
                o.queue_ahead = min(o.queue_ahead, book.qty_at(side, o.price))
        for pr in prints:
            left = pr.qty
            for o in book.own(pr.aggressor.opposite):
                assert o.price is not None
                if left <= 0 or not crosses(pr.aggressor, pr.price, o.price):
                    break
                if o.price == pr.price:
                    eaten = min(o.queue_ahead, left)
                    o.queue_ahead -= eaten
                    left -= eaten
                    if left <= 0:
                        break
                trade = self._fill(o, o.price, min(o.remaining, left), is_maker=True)
                if trade is not None:
                    left -= trade.qty
            self.last_price[symbol] = pr.price
        if last_price is not None:
            self.last_price[symbol] = last_price
        for side in (Side.BUY, Side.SELL):
            for o in book.own(side):
                if not o.is_open:
                    continue
                plan = book.plan_take(o.side, o.remaining, o.price)
                if not plan:
                    break  # priority order: if the best of ours does not cross, none does
                for level_price, qty in plan:
                    trade = self._fill(o, o.price or level_price, qty, is_maker=True)
                    if trade is None:
                        break
                    book.consume(o.side, [(level_price, trade.qty)])
                    if o.status.is_terminal:
                        break
        last = self.last_price.get(symbol)
        if self.is_futures or last is None:
            return
        open_ = self._open.values()
        for order in [o for o in open_ if o.symbol == symbol and o.is_open and not o.triggered]:
            assert order.stop_price is not None
            hit = last <= order.stop_price if order.side is Side.SELL else last >= order.stop_price
            if not hit:
                continue
            order.triggered = True
            order.updated_ts = self.clock.now_ms()
            self._report("TRIGGERED", order, None)
            self._cancel_sibling(order)
            self._execute(order, self.books[symbol])
            self._update_list(order.order_list_id)

    # ---- spot OCO -------------------------------------------------------------------------
    def place_oco(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        *,
        limit_price: Decimal,
        stop_price: Decimal,
        stop_limit_price: Decimal | None = None,
        list_client_order_id: str | None = None,
        limit_client_order_id: str | None = None,
        stop_client_order_id: str | None = None,
    ) -> OrderList:
        """`/api/v3/orderList/oco`: a LIMIT_MAKER leg and a STOP_LOSS_LIMIT leg (STOP_LOSS, a
        market order on trigger, when `stop_limit_price` is None; reported as STOP_MARKET).

        SELL: limit (above) > last price > stop (below). BUY: limit (below) < last < stop
        (above). The quantity is locked once for both legs.
        """
        if self.is_futures:
            raise errors.VenueError(-1116, "Invalid orderType.")
        inst = self.instrument(symbol)
        book = self.book(symbol)
        ref = self.last_price.get(symbol) or self._reference_price(symbol, book)
        stop_type = OrderType.STOP_LOSS_LIMIT if stop_limit_price else OrderType.STOP_MARKET
        self._validate(inst, book, OrderType.LIMIT_MAKER, qty, limit_price, None, False)
        self._validate(
            inst, book, OrderType.LIMIT, qty, stop_limit_price or stop_price, None, False
        )
        if not inst.is_on_tick(stop_price):
            raise errors.VenueError(errors.FILTER_FAILURE, "Filter failure: PRICE_FILTER")
        ok = (limit_price > stop_price if side is Side.SELL else limit_price < stop_price) and (
            ref is None
            or (
                limit_price > ref > stop_price
                if side is Side.SELL
                else limit_price < ref < stop_price
            )
        )
        if not ok:
            raise errors.VenueError(errors.NEW_ORDER_REJECTED, errors.MSG_OCO_PRICES)
        for coid in (limit_client_order_id, stop_client_order_id):
            if coid is not None:
                self._check_duplicate(coid)
        self._check_post_only(book, side, limit_price)
        limit_leg = self._new_order(
            inst,
            side,
            OrderType.LIMIT_MAKER,
            qty,
            limit_price,
            TimeInForce.GTC,
            limit_client_order_id,
            False,
            True,
        )
        stop_leg = self._new_order(
            inst,
            side,
            stop_type,
            qty,
            stop_limit_price,
            TimeInForce.GTC if stop_limit_price else None,
            stop_client_order_id,
            False,
            False,
            stop_price=stop_price,
        )
        stop_leg.triggered = False
        worst = max(limit_price, stop_limit_price or stop_price)
        self.account.reserve(limit_leg, inst, qty * worst)
        list_id = next(self._list_ids)
        limit_leg.order_list_id = stop_leg.order_list_id = list_id
        above, below = (limit_leg, stop_leg) if side is Side.SELL else (stop_leg, limit_leg)
        now = self.clock.now_ms()
        lst = OrderList(
            order_list_id=list_id,
            list_client_order_id=list_client_order_id or f"venue-list-{list_id}",
            symbol=symbol,
            side=side,
            above_order_id=above.order_id,
            below_order_id=below.order_id,
            status=ListStatus.EXEC_STARTED,
            created_ts=now,
            updated_ts=now,
        )
        self.order_lists[list_id] = lst
        for leg in (above, below):
            self._register(leg)
            self._report("NEW", leg, None)
        self._list_report(self._list_snapshot(lst))
        limit_leg.seq = next(self._seq)
        limit_leg.queue_ahead = book.qty_at(side, limit_price)
        book.add_own(limit_leg)
        return self._list_snapshot(lst)

    def _list_snapshot(self, lst: OrderList) -> OrderList:
        snap = lst.snapshot()
        snap.orders = [
            self.orders[lst.above_order_id].snapshot(),
            self.orders[lst.below_order_id].snapshot(),
        ]
        return snap

    def _find_list(
        self, order_list_id: int | None, list_client_order_id: str | None
    ) -> OrderList | None:
        if order_list_id is not None:
            return self.order_lists.get(order_list_id)
        if list_client_order_id is None:
            raise errors.VenueError(
                errors.INVALID_PARAM,
                "Param 'origClientOrderId' or 'orderListId' must be sent, "
                "but both were empty/null!",
            )
        return next(
            (
                lst
                for lst in self.order_lists.values()
                if lst.list_client_order_id == list_client_order_id
            ),
            None,
        )

    def get_order_list(
        self, order_list_id: int | None = None, *, list_client_order_id: str | None = None
    ) -> OrderList:
        lst = self._find_list(order_list_id, list_client_order_id)
        if lst is None:
            raise errors.VenueError(errors.NO_SUCH_ORDER, "Order list does not exist.")
        return self._list_snapshot(lst)

    def open_order_lists(self) -> list[OrderList]:
        return [
            self._list_snapshot(lst)
            for lst in self.order_lists.values()
            if lst.status is ListStatus.EXEC_STARTED
        ]

    def cancel_order_list(
        self,
        symbol: str,
        order_list_id: int | None = None,
        *,
        list_client_order_id: str | None = None,
    ) -> OrderList:
        lst = self._find_list(order_list_id, list_client_order_id)
        if lst is None or lst.symbol != symbol or lst.status is ListStatus.ALL_DONE:
            raise errors.VenueError(errors.CANCEL_REJECTED, errors.MSG_UNKNOWN_ORDER)
        self._cancel_legs(lst)
        return self._list_snapshot(lst)

    def _cancel_legs(self, lst: OrderList, *, but: VenueOrder | None = None) -> None:
        for leg_id in (lst.above_order_id, lst.below_order_id):
            leg = self.orders[leg_id]
            if leg.is_open and leg is not but:
                self._end(leg, OrderStatus.CANCELED, "order list cancelled")

    def _cancel_sibling(self, survivor: VenueOrder) -> None:
        """One leg filled (even partially) or triggered: the venue cancels the other; the shared
        lock moves to the survivor instead of being released."""
        lst = self.order_lists[survivor.order_list_id]
        above = survivor.order_id == lst.above_order_id
        other = self.orders[lst.below_order_id if above else lst.above_order_id]
        if not other.is_open:
            return
        survivor.reserved += other.reserved
        other.reserved = ZERO
        self._end(other, OrderStatus.CANCELED, "OCO: other leg executed")

    def _update_list(self, list_id: int) -> None:
        lst = self.order_lists[list_id]
        legs = [self.orders[lst.above_order_id], self.orders[lst.below_order_id]]
        if lst.status is ListStatus.EXEC_STARTED and all(not leg.is_open for leg in legs):
            lst.status = ListStatus.ALL_DONE
            lst.updated_ts = self.clock.now_ms()
            self._list_report(self._list_snapshot(lst))
