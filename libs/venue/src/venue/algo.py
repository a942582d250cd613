"""Futures conditional orders served as "algo orders" (`/fapi/v1/algoOrder`).

Binance moved STOP_MARKET / TAKE_PROFIT_MARKET (and friends) to the algo service: they get an
``algoId`` from a separate id space, are queried/cancelled/listed on their own endpoints, and on
trigger submit an ordinary MARKET order (whose ``orderId`` is then reported). Triggers compare
the working price (MARK_PRICE by default, or CONTRACT_PRICE = last trade) with the trigger price:

============================  ===========================  ===========================
type                          SELL (protects a long)       BUY (protects a short)
============================  ===========================  ===========================
STOP_MARKET                   price <= trigger             price >= trigger
TAKE_PROFIT_MARKET            price >= trigger             price <= trigger
============================  ===========================  ===========================

An order that would trigger at once is rejected (-2021). A ``closePosition`` order closes the
whole position at trigger time; if there is nothing to close then, it EXPIRES (as does a
reduce-only one that cannot reduce).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal

from svckit.clock import Clock
from tradekit.enums import OrderType, Side
from venue import errors
from venue.accounts import FuturesAccount
from venue.engine import MatchingEngine
from venue.models import AlgoOrder, AlgoStatus, WorkingType

_ALGO_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})

PriceFn = Callable[[str, WorkingType], Decimal | None]
AlgoReportFn = Callable[[str, AlgoOrder], None]


def is_triggered(type_: OrderType, side: Side, trigger: Decimal, price: Decimal) -> bool:
    stop = type_ is OrderType.STOP_MARKET
    if side is Side.SELL:
        return price <= trigger if stop else price >= trigger
    return price >= trigger if stop else price <= trigger


class AlgoBook:
    """Open and finished conditional orders of the futures market."""

    def __init__(
        self,
        *,
        engine: MatchingEngine,
        account: FuturesAccount,
        clock: Clock,
        working_price: PriceFn,
        report: AlgoReportFn,
    ) -> None:
        self.engine = engine
        self.account = account
        self.clock = clock
        self._price = working_price
        self._report = report
        self._ids = itertools.count(3_000_000_001)
        self.orders: dict[int, AlgoOrder] = {}
        self._by_client: dict[str, int] = {}

    def place(
        self,
        symbol: str,
        side: Side,
        type: OrderType,  # Binance's parameter name
        *,
        trigger_price: Decimal,
        qty: Decimal | None = None,
        working_type: WorkingType = WorkingType.MARK_PRICE,
        reduce_only: bool = False,
        close_position: bool = False,
        client_algo_id: str | None = None,
    ) -> AlgoOrder:
        inst = self.engine.instrument(symbol)
        if type not in _ALGO_TYPES:
            raise errors.VenueError(-1116, "Invalid orderType.")
        if close_position and (qty is not None or reduce_only):
            # Binance: closePosition cannot be combined with quantity or reduceOnly.
            raise errors.VenueError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if not close_position and (qty is None or qty <= 0):
            raise errors.VenueError(
                errors.INVALID_PARAM, "Mandatory parameter 'quantity' was not sent."
            )
        if qty is not None and not inst.is_on_step(qty):
            raise errors.VenueError(
                errors.BAD_PRECISION, "Precision is over the maximum defined for this asset."
            )
        if trigger_price <= 0 or not inst.is_on_tick(trigger_price):
            raise errors.VenueError(errors.PRICE_NOT_ON_TICK, "Price not increased by tick size.")
        if client_algo_id is not None:
            prior = self._by_client.get(client_algo_id)
            if prior is not None and self.orders[prior].status.is_open:
                raise errors.VenueError(errors.DUPLICATE_CLIENT_ORDER_ID, errors.MSG_FUT_DUPLICATE)
        if reduce_only and self.account.reducible(symbol, side) == 0:
            raise errors.VenueError(errors.REDUCE_ONLY_REJECT, errors.MSG_REDUCE_ONLY)
        price = self._price(symbol, working_type)
        if price is not None and is_triggered(type, side, trigger_price, price):
            raise errors.VenueError(errors.WOULD_IMMEDIATELY_TRIGGER, errors.MSG_WOULD_TRIGGER)
        now = self.clock.now_ms()
        algo_id = next(self._ids)
        algo = AlgoOrder(
            algo_id=algo_id,
            client_algo_id=client_algo_id or f"venue-algo-{algo_id}",
            symbol=symbol,
            side=side,
            type=type,
            trigger_price=trigger_price,
            working_type=working_type,
            qty=qty,
            reduce_only=reduce_only,
            close_position=close_position,
            status=AlgoStatus.NEW,
            created_ts=now,
            updated_ts=now,
        )
        self.orders[algo_id] = algo
        self._by_client[algo.client_algo_id] = algo_id
        self._report("NEW", algo)
        return algo.snapshot()

    def _lookup(self, algo_id: int | None, client_algo_id: str | None) -> AlgoOrder | None:
        if algo_id is None and client_algo_id is None:
            raise errors.VenueError(
                errors.INVALID_PARAM, "Param 'algoId' or 'clientAlgoId' must be sent."
            )
        if algo_id is None:
            assert client_algo_id is not None
            algo_id = self._by_client.get(client_algo_id)
        return self.orders.get(algo_id) if algo_id is not None else None

    def get(self, *, algo_id: int | None = None, client_algo_id: str | None = None) -> AlgoOrder:
        algo = self._lookup(algo_id, client_algo_id)
        if algo is None:
            raise errors.VenueError(errors.NO_SUCH_ORDER, errors.MSG_NO_SUCH_ORDER)
        return algo.snapshot()

    def cancel(self, *, algo_id: int | None = None, client_algo_id: str | None = None) -> AlgoOrder:
        algo = self._lookup(algo_id, client_algo_id)
        if algo is None or not algo.status.is_open:
            raise errors.VenueError(errors.CANCEL_REJECTED, errors.MSG_UNKNOWN_ORDER)
        self._finish(algo, AlgoStatus.CANCELED)
        return algo.snapshot()

    def open_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        return [
            a.snapshot()
            for a in self.orders.values()
            if a.status.is_open and (symbol is None or a.symbol == symbol)
        ]

    def _finish(self, algo: AlgoOrder, status: AlgoStatus, reason: str | None = None) -> None:
        algo.status = status
        algo.reason = reason
        algo.updated_ts = self.clock.now_ms()
        self._report(status.value, algo)

    def check_triggers(self, symbol: str) -> None:
        """Trigger every open conditional order of `symbol` whose working price crossed."""
        for algo in list(self.orders.values()):
            if algo.symbol != symbol or not algo.status.is_open:
                continue
            price = self._price(symbol, algo.working_type)
            if price is not None and is_triggered(algo.type, algo.side, algo.trigger_price, price):
                self._trigger(algo)

    def _trigger(self, algo: AlgoOrder) -> None:
        algo.trigger_ts = self.clock.now_ms()
        algo.status = AlgoStatus.TRIGGERED
        self._report("TRIGGERED", algo)
        qty = algo.qty
        if algo.close_position:
            qty = self.account.reducible(algo.symbol, algo.side)
            if qty == 0:
                self._finish(algo, AlgoStatus.EXPIRED, "closePosition: no position to close")
                return
        assert qty is not None
        try:
            order = self.engine.place(
                symbol=algo.symbol,
                side=algo.side,
                type=OrderType.MARKET,
                qty=qty,
                reduce_only=algo.reduce_only or algo.close_position,
            )
        except errors.VenueError as exc:
            self._finish(algo, AlgoStatus.EXPIRED, exc.msg)
            return
        algo.triggered_order_id = order.order_id
        self._finish(algo, AlgoStatus.FINISHED)
