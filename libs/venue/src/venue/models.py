"""Records the venue keeps and hands out: orders, trades, order lists, algo orders, reports.

The venue owns the mutable originals; every public method returns a :meth:`snapshot` copy so a
caller can never change venue state by mutating what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from tradekit.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from tradekit.money import ZERO


class WorkingType(StrEnum):
    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


class MarginType(StrEnum):
    ISOLATED = "ISOLATED"
    CROSSED = "CROSSED"


@dataclass(slots=True)
class Trade:
    """One execution of one of our orders (Binance `myTrades` row)."""

    trade_id: int
    order_id: int
    client_order_id: str
    market: Market
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal
    fee_asset: str
    is_maker: bool
    ts: int
    realized_pnl: Decimal = ZERO


@dataclass(slots=True)
class VenueOrder:
    """An order as the venue sees it. `status` uses tradekit's vocabulary: Binance's NEW is
    reported as ACCEPTED (the order is live at the venue)."""

    order_id: int
    client_order_id: str
    market: Market
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce | None
    qty: Decimal
    price: Decimal | None
    status: OrderStatus
    created_ts: int
    updated_ts: int
    stop_price: Decimal | None = None
    reduce_only: bool = False
    post_only: bool = False
    filled_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    fee: Decimal = ZERO
    trades: list[Trade] = field(default_factory=list)
    order_list_id: int = -1
    # Stop legs of an OCO wait for their trigger before they work as limit/market orders.
    triggered: bool = True
    expire_reason: str | None = None
    # ---- internal bookkeeping (not part of Binance's payload) -------------------------------
    seq: int = 0  # time priority among our resting orders
    queue_ahead: Decimal = ZERO  # market quantity ahead of us at our price level
    reserved: Decimal = ZERO  # spot: locked asset amount left; futures: margin held

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        return self.cum_quote / self.filled_qty if self.filled_qty > 0 else None

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    def snapshot(self) -> VenueOrder:
        return replace(self, trades=[replace(t) for t in self.trades])


class ListStatus(StrEnum):
    """Binance `listStatusType`."""

    EXEC_STARTED = "EXEC_STARTED"
    ALL_DONE = "ALL_DONE"


@dataclass(slots=True)
class OrderList:
    """A spot OCO (`/api/v3/orderList/oco`): an above leg and a below leg sharing one quantity."""

    order_list_id: int
    list_client_order_id: str
    symbol: str
    side: Side
    above_order_id: int
    below_order_id: int
    status: ListStatus
    created_ts: int
    updated_ts: int
    orders: list[VenueOrder] = field(default_factory=list)  # filled in by snapshots

    def snapshot(self) -> OrderList:
        return replace(self, orders=[o.snapshot() for o in self.orders])


class AlgoStatus(StrEnum):
    """Binance algo order statuses (`/fapi/v1/algoOrder`)."""

    NEW = "NEW"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self is AlgoStatus.NEW


@dataclass(slots=True)
class AlgoOrder:
    """A futures conditional order (STOP_MARKET / TAKE_PROFIT_MARKET) in its own id space.

    On trigger it submits a MARKET order whose id is `triggered_order_id`.
    """

    algo_id: int
    client_algo_id: str
    symbol: str
    side: Side
    type: OrderType
    trigger_price: Decimal
    working_type: WorkingType
    qty: Decimal | None
    reduce_only: bool
    close_position: bool
    status: AlgoStatus
    created_ts: int
    updated_ts: int
    triggered_order_id: int | None = None
    trigger_ts: int | None = None
    reason: str | None = None

    def snapshot(self) -> AlgoOrder:
        return replace(self)


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class PositionInfo:
    """One-way-mode position (`/fapi/v3/positionRisk` row)."""

    symbol: str
    qty: Decimal  # signed: > 0 long, < 0 short
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    leverage: int
    margin_type: MarginType
    initial_margin: Decimal


@dataclass(frozen=True, slots=True)
class FuturesAccountInfo:
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    available_balance: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal


class ReportKind(StrEnum):
    ORDER = "ORDER"  # spot executionReport / futures ORDER_TRADE_UPDATE
    ALGO = "ALGO"  # futures ALGO_UPDATE
    LIST = "LIST"  # spot listStatus


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One event on the user-data feed. `execution_type` follows Binance: NEW, TRADE, CANCELED,
    EXPIRED, REJECTED, TRIGGERED, FINISHED, ALL_DONE. `seq` is unique per emitted event, so a
    duplicated report (fault) is recognisable by its repeated `seq`/`trade`."""

    seq: int
    kind: ReportKind
    execution_type: str
    market: Market
    symbol: str
    ts: int
    order: VenueOrder | None = None
    trade: Trade | None = None
    algo: AlgoOrder | None = None
    order_list: OrderList | None = None


@dataclass(frozen=True, slots=True)
class TradePrint:
    """A trade between other market participants (what the tape shows)."""

    ts: int
    price: Decimal
    qty: Decimal
    aggressor: Side  # BUY: a buyer lifted the ask


@dataclass(frozen=True, slots=True)
class TickerView:
    """Top of book, last trade and (futures) mark/funding of one symbol."""

    symbol: str
    ts: int
    last: Decimal | None
    bid: tuple[Decimal, Decimal] | None  # (price, qty)
    ask: tuple[Decimal, Decimal] | None
    mark: Decimal | None = None
    funding_rate: Decimal | None = None
    next_funding_ts: int | None = None


@dataclass(frozen=True, slots=True)
class BookView:
    """A depth snapshot: best first; `own` levels are our resting orders merged in."""

    symbol: str
    ts: int
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
