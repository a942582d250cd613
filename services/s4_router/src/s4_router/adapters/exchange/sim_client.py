"""In-process adapter: :class:`SimExchange` puts the :class:`venue.Venue` simulator behind the
exchange port (fast tests and ``make run`` with ``S4_EXCHANGE=sim``).

Error translation (venue → port), exactly as :mod:`.base` documents:

==========================================  ===============================================
venue                                       port
==========================================  ===============================================
RateLimitExceeded (429, -1003)              RateLimited(retry_after=Retry-After seconds)
VenueServerError (5xx)                      ExchangeUnavailable
VenueTimeout, request never reached venue   ExchangeNetworkError (provably not sent)
VenueTimeout / AckDropped on a *submit*     AmbiguousSubmit (resolve by client order id)
VenueTimeout / AckDropped on anything else  ExchangeUnavailable (no answer; retry is safe:
                                            a repeated cancel answers OrderNotFound)
-2010 insufficient balance, -2019 margin    InsufficientFunds
-2010 would take, -5022                     PostOnlyRejected
-2010 duplicate, -4116                      DuplicateOrder
-2022                                       ReduceOnlyRejected
-4048 margin type with a position/orders    MarginModeConflict
-2011 unknown order, -2013 no such order    OrderNotFound
any other 4xx                               InvalidOrder
==========================================  ===============================================

The adapter never reads the venue-side truth of a timeout (``VenueTimeout.accepted``): a real
client cannot, so neither does this one. Beyond the port, it offers the venue's order-update
feed (``subscribe_order_updates``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    AssetBalance,
    BookTop,
    ConditionalOrder,
    DuplicateOrder,
    ExchangeError,
    ExchangeNetworkError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MarginModeConflict,
    OcoOrderList,
    OcoRequest,
    OrderNotFound,
    PlaceOrderRequest,
    Position,
    PostOnlyRejected,
    RateLimited,
    ReduceOnlyRejected,
)
from tradekit.enums import Liquidity, Market, OrderType, TimeInForce
from tradekit.instrument import Instrument
from venue import errors as verr
from venue.models import (
    AlgoOrder,
    ExecutionReport,
    MarginType,
    OrderList,
    Trade,
    VenueOrder,
    WorkingType,
)
from venue.venue import Venue

T = TypeVar("T")


def translate(exc: verr.VenueError, *, submit: bool) -> ExchangeError:
    """Map a venue error to the port's tree (see the module table)."""
    code = exc.code
    if isinstance(exc, verr.RateLimitExceeded):
        return RateLimited(exc.msg, retry_after=exc.retry_after_s, code=code)
    if isinstance(exc, verr.VenueTimeout):
        if not exc.reached_venue:
            return ExchangeNetworkError(exc.msg, code=code)
        if submit:
            return AmbiguousSubmit(exc.msg, code=code)
        return ExchangeUnavailable(exc.msg, code=code)
    if exc.http_status >= 500:
        return ExchangeUnavailable(exc.msg, code=code)
    if code == verr.MARGIN_INSUFFICIENT or (
        code == verr.NEW_ORDER_REJECTED and exc.msg == verr.MSG_INSUFFICIENT_BALANCE
    ):
        return InsufficientFunds(exc.msg, code=code)
    if code == verr.POST_ONLY_REJECTED or (
        code == verr.NEW_ORDER_REJECTED and exc.msg == verr.MSG_WOULD_TAKE
    ):
        return PostOnlyRejected(exc.msg, code=code)
    if code == verr.DUPLICATE_CLIENT_ORDER_ID or (
        code == verr.NEW_ORDER_REJECTED and exc.msg == verr.MSG_DUPLICATE
    ):
        return DuplicateOrder(exc.msg, code=code)
    if code == verr.REDUCE_ONLY_REJECT:
        return ReduceOnlyRejected(exc.msg, code=code)
    if code in (verr.CANCEL_REJECTED, verr.NO_SUCH_ORDER):
        return OrderNotFound(exc.msg, code=code)
    if code == verr.MARGIN_TYPE_WITH_POSITION:
        return MarginModeConflict(exc.msg, code=code)
    return InvalidOrder(exc.msg, code=code)


def _trade(t: Trade) -> ExchangeTrade:
    return ExchangeTrade(
        trade_id=str(t.trade_id),
        venue_order_id=str(t.order_id),
        client_order_id=t.client_order_id,
        symbol=t.symbol,
        side=t.side,
        price=t.price,
        qty=t.qty,
        fee=t.fee,
        fee_asset=t.fee_asset,
        liquidity=Liquidity.MAKER if t.is_maker else Liquidity.TAKER,
        ts=t.ts,
    )


def _order(o: VenueOrder) -> ExchangeOrder:
    return ExchangeOrder(
        venue_order_id=str(o.order_id),
        client_order_id=o.client_order_id,
        market=o.market,
        symbol=o.symbol,
        side=o.side,
        type=o.type,
        status=o.status,
        qty=o.qty,
        filled_qty=o.filled_qty,
        avg_price=o.avg_price,
        price=o.price,
        stop_price=o.stop_price,
        reduce_only=o.reduce_only,
        ts=o.updated_ts,
        trades=tuple(_trade(t) for t in o.trades),
    )


def _conditional(a: AlgoOrder) -> ConditionalOrder:
    return ConditionalOrder(
        algo_id=str(a.algo_id),
        client_algo_id=a.client_algo_id,
        symbol=a.symbol,
        side=a.side,
        type=a.type,
        trigger_price=a.trigger_price,
        working_type=a.working_type.value,
        qty=a.qty,
        reduce_only=a.reduce_only,
        close_position=a.close_position,
        status=a.status.value,
        triggered_order_id=str(a.triggered_order_id) if a.triggered_order_id else None,
        ts=a.updated_ts,
    )


def _order_list(lst: OrderList) -> OcoOrderList:
    return OcoOrderList(
        order_list_id=str(lst.order_list_id),
        list_client_order_id=lst.list_client_order_id,
        symbol=lst.symbol,
        status=lst.status.value,
        orders=tuple(_order(o) for o in lst.orders),
    )


def _int_id(value: str | None) -> int | None:
    """Venue ids are integers; anything else cannot exist there."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise OrderNotFound(f"unknown order id {value!r}", code=verr.NO_SUCH_ORDER) from None


class SimExchange(ExchangePort):
    """The exchange port over an in-process :class:`venue.Venue`."""

    venue = "sim"

    def __init__(self, sim: Venue, *, simulate_latency: bool = False) -> None:
        self.sim = sim
        self._simulate_latency = simulate_latency
        self._closed = False

    async def _call(self, fn: Callable[[], T], *, submit: bool = False) -> T:
        if self._closed:
            raise ExchangeNetworkError("exchange adapter is closed")
        if self._simulate_latency:
            # The core only says how long it would take; waiting is the adapter's choice.
            await asyncio.sleep(self.sim.latency.sample_ms() / 1000)
        try:
            return fn()
        except verr.VenueError as exc:
            raise translate(exc, submit=submit) from exc

    # ---- request weight: the simulator's own limiter (what its facade sends as a header) ----
    def weight_limit_1m(self, market: Market) -> int | None:
        return self.sim.limiter.limit

    def used_weight_1m(self, market: Market) -> int | None:
        return self.sim.used_weight()

    # ---- the port -----------------------------------------------------------------------------
    async def load_markets(self, instruments: Sequence[Instrument]) -> None:
        for inst in instruments:
            self.sim.instruments[inst.symbol] = inst  # S4's instrument_registry wins

    async def server_time_ms(self) -> int:
        return await self._call(self.sim.server_time_ms)

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        req.refuse_algo()
        type_, tif = req.type, req.time_in_force
        if req.post_only or type_ is OrderType.LIMIT_MAKER:
            # Binance spells post-only differently per market.
            if req.market is Market.SPOT:
                type_, tif = OrderType.LIMIT_MAKER, None
            else:
                type_, tif = OrderType.LIMIT, TimeInForce.GTX
        order = await self._call(
            lambda: self.sim.place_order(
                req.market,
                req.symbol,
                req.side,
                type_,
                req.qty,
                price=req.price,
                time_in_force=tif,
                client_order_id=req.client_order_id,
                reduce_only=req.reduce_only,
            ),
            submit=True,
        )
        return _order(order)

    async def cancel_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        oid = _int_id(venue_order_id)
        order = await self._call(
            lambda: self.sim.cancel_order(
                market, symbol, order_id=oid, client_order_id=client_order_id
            )
        )
        return _order(order)

    async def fetch_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        oid = _int_id(venue_order_id)
        order = await self._call(
            lambda: self.sim.get_order(
                market, symbol, order_id=oid, client_order_id=client_order_id
            )
        )
        return _order(order)

    async def fetch_open_orders(
        self, market: Market, symbol: str | None = None
    ) -> list[ExchangeOrder]:
        orders = await self._call(lambda: self.sim.open_orders(market, symbol))
        return [_order(o) for o in orders]

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]:
        trades = await self._call(lambda: self.sim.my_trades(market, symbol, since_ms))
        return [_trade(t) for t in trades]

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        view = await self._call(lambda: self.sim.book(market, symbol, depth))
        return BookTop(symbol=view.symbol, ts=view.ts, bids=view.bids, asks=view.asks)

    async def close(self) -> None:
        self._closed = True

    # ---- beyond the port ----------------------------------------------------------------------
    def subscribe_order_updates(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(client_order_id)` for every order execution report of the venue's
        user-data feed (a websocket in real life). Used to wake an execution early; order
        state itself is always read through the port, so a missed report only costs a poll."""

        def on_report(report: ExecutionReport) -> None:
            if report.order is not None:
                callback(report.order.client_order_id)

        return self.sim.feed.subscribe(on_report)

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        return await self._call(lambda: self.sim.set_leverage(symbol, leverage))

    async def set_margin_type(self, symbol: str, margin_type: str) -> bool:
        mt = MarginType(margin_type.upper())
        try:
            await self._call(lambda: self.sim.set_margin_type(symbol, mt))
        except InvalidOrder as exc:
            if exc.code == verr.NO_NEED_TO_CHANGE_MARGIN_TYPE:
                return False
            raise
        return True

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        infos = await self._call(self.sim.positions)
        return [
            Position(
                symbol=p.symbol,
                qty=p.qty,
                entry_price=p.entry_price,
                leverage=p.leverage,
                margin_type=p.margin_type.value,
                mark_price=p.mark_price,
                unrealized_pnl=p.unrealized_pnl,
            )
            for p in infos
            if symbols is None or p.symbol in symbols
        ]

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        if market is Market.SPOT:
            bals = await self._call(self.sim.balances)
            return {a: AssetBalance(a, b.free, b.locked) for a, b in bals.items()}
        info = await self._call(self.sim.futures_account_info)
        locked = max(info.wallet_balance - info.available_balance, Decimal(0))
        asset = self.sim.futures_account.asset
        return {asset: AssetBalance(asset, info.available_balance, locked)}

    async def place_oco(self, req: OcoRequest) -> OcoOrderList:
        lst = await self._call(
            lambda: self.sim.place_oco(
                req.symbol,
                req.side,
                req.qty,
                limit_price=req.limit_price,
                stop_price=req.stop_price,
                stop_limit_price=req.stop_limit_price,
                list_client_order_id=req.list_client_order_id,
                limit_client_order_id=req.limit_client_order_id,
                stop_client_order_id=req.stop_client_order_id,
            ),
            submit=True,
        )
        return _order_list(lst)

    async def fetch_order_list(
        self,
        order_list_id: str | None = None,
        *,
        symbol: str | None = None,
        list_client_order_id: str | None = None,
    ) -> OcoOrderList:
        lid = _int_id(order_list_id)
        assert lid is not None or list_client_order_id is not None
        return _order_list(
            await self._call(
                lambda: self.sim.get_order_list(lid, list_client_order_id=list_client_order_id),
            )
        )

    async def cancel_order_list(self, symbol: str, order_list_id: str) -> OcoOrderList:
        lid = _int_id(order_list_id)
        assert lid is not None
        lst = await self._call(lambda: self.sim.cancel_order_list(symbol, lid))
        return _order_list(lst)

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        stop_price = req.trigger()
        working = WorkingType(req.working_type or WorkingType.MARK_PRICE.value)
        algo = await self._call(
            lambda: self.sim.place_algo_order(
                req.symbol,
                req.side,
                req.type,
                trigger_price=stop_price,
                qty=None if req.close_position else req.qty,
                working_type=working,
                reduce_only=req.reduce_only and not req.close_position,
                close_position=req.close_position,
                client_algo_id=req.client_order_id,
            ),
            submit=True,
        )
        return _conditional(algo)

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        aid = _int_id(algo_id)
        algo = await self._call(
            lambda: self.sim.cancel_algo_order(algo_id=aid, client_algo_id=client_algo_id),
        )
        if algo.symbol != symbol:
            raise OrderNotFound("conditional order of another symbol", code=verr.NO_SUCH_ORDER)
        return _conditional(algo)

    async def fetch_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        aid = _int_id(algo_id)
        algo = await self._call(
            lambda: self.sim.get_algo_order(algo_id=aid, client_algo_id=client_algo_id),
        )
        if algo.symbol != symbol:
            raise OrderNotFound("conditional order of another symbol", code=verr.NO_SUCH_ORDER)
        return _conditional(algo)

    async def fetch_open_conditionals(self, symbol: str | None = None) -> list[ConditionalOrder]:
        algos = await self._call(lambda: self.sim.open_algo_orders(symbol))
        return [_conditional(a) for a in algos]


__all__ = ["SimExchange", "translate"]
