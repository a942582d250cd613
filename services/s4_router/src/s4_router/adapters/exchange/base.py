"""The exchange port S4 executes through, and the one exception tree every adapter maps into.

Adapters: :mod:`.sim_client` (the in-process venue simulator, fast tests and `make run`) and
:mod:`.ccxt_client` (binance, binanceusdm, mexc through ccxt.async_support; the Binance-compatible
facade of the simulator in tests).

Exception tree (adapters translate vendor errors into exactly these)::

    ExchangeError
    ├── RetryableError                   safe to retry the *same* request
    │   ├── ExchangeNetworkError         connection reset/refused before the request was sent
    │   ├── RateLimited                  HTTP 429/418 (retry_after seconds when the venue says)
    │   └── ExchangeUnavailable          HTTP 5xx, maintenance
    ├── AmbiguousSubmit                  a submit timed out / ack dropped: it may or may not exist
    │                                    at the venue; resolve by querying the client order id,
    │                                    never assume rejected, never resend under a new id
    ├── DefinitiveError                  the venue answered "no"; retrying cannot help
    │   ├── InvalidOrder
    │   │   └── PostOnlyRejected         a post-only order would have crossed
    │   ├── InsufficientFunds
    │   ├── ReduceOnlyRejected
    │   ├── MarginModeConflict           FUT margin type cannot change: a position or open
    │   │                                orders exist in the other mode (Binance -4047/-4048)
    │   └── OrderNotFound
    └── DuplicateOrder                   the client order id already exists at the venue: the
                                         earlier submit was accepted (treat as accepted)
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from s4_router.policies.model import TopOfBook
from tradekit.enums import Liquidity, Market, OrderStatus, OrderType, Side, TimeInForce
from tradekit.instrument import Instrument

CONDITIONAL = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})


class ExchangeError(Exception):
    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetryableError(ExchangeError):
    pass


class ExchangeNetworkError(RetryableError):
    pass


class RateLimited(RetryableError):
    def __init__(
        self, message: str, *, retry_after: float | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ExchangeUnavailable(RetryableError):
    pass


class AmbiguousSubmit(ExchangeError):
    pass


class DefinitiveError(ExchangeError):
    pass


class InvalidOrder(DefinitiveError):
    pass


class PostOnlyRejected(InvalidOrder):
    pass


class InsufficientFunds(DefinitiveError):
    pass


class ReduceOnlyRejected(DefinitiveError):
    pass


class MarginModeConflict(DefinitiveError):
    """The venue refuses to change a symbol's margin type while a position or open orders
    exist in the other mode (Binance -4048 position, -4047 open orders)."""


class OrderNotFound(DefinitiveError):
    pass


class DuplicateOrder(ExchangeError):
    pass


class ProtectionUnsupported(ExchangeError):
    """The adapter has no such protective-order call (never retried; the intent is refused)."""


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    market: Market
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    client_order_id: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    post_only: bool = False
    reduce_only: bool = False
    close_position: bool = False
    working_type: str | None = None  # MARK_PRICE | CONTRACT_PRICE (conditional FUT orders)

    def refuse_algo(self) -> None:
        if self.type in CONDITIONAL:
            raise InvalidOrder(f"{self.type} is an algo order: use place_conditional()", code=-1116)

    def trigger(self) -> Decimal:
        if self.market is not Market.FUT or self.type not in CONDITIONAL:
            raise InvalidOrder("conditional orders are FUT STOP_MARKET/TAKE_PROFIT_MARKET")
        if self.stop_price is None:
            raise InvalidOrder("conditional order needs stop_price", code=-1102)
        return self.stop_price


@dataclass(frozen=True, slots=True)
class OcoRequest:
    """A spot OCO list: a LIMIT_MAKER take-profit leg at `limit_price` and a STOP_LOSS leg
    triggered at `stop_price` (STOP_LOSS_LIMIT at `stop_limit_price` when given)."""

    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal
    stop_price: Decimal
    stop_limit_price: Decimal | None = None
    list_client_order_id: str | None = None
    limit_client_order_id: str | None = None
    stop_client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExchangeTrade:
    trade_id: str
    venue_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    ts: int


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    venue_order_id: str
    client_order_id: str
    market: Market
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    ts: int = 0
    trades: tuple[ExchangeTrade, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class BookTop(TopOfBook):
    symbol: str
    ts: int
    bids: tuple[tuple[Decimal, Decimal], ...]  # best first
    asks: tuple[tuple[Decimal, Decimal], ...]


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: Decimal  # signed: > 0 long, < 0 short
    entry_price: Decimal
    leverage: int
    margin_type: str
    mark_price: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AssetBalance:
    asset: str
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class OcoOrderList:
    """A spot OCO: `orders` are (above leg, below leg)."""

    order_list_id: str
    list_client_order_id: str
    symbol: str
    status: str  # EXEC_STARTED | ALL_DONE
    orders: tuple[ExchangeOrder, ...]


@dataclass(frozen=True, slots=True)
class ConditionalOrder:
    """A futures algo order (STOP_MARKET / TAKE_PROFIT_MARKET)."""

    algo_id: str
    client_algo_id: str
    symbol: str
    side: Side
    type: OrderType
    trigger_price: Decimal
    working_type: str
    qty: Decimal | None
    reduce_only: bool
    close_position: bool
    status: str  # NEW | TRIGGERED | FINISHED | CANCELED | EXPIRED | REJECTED
    triggered_order_id: str | None
    ts: int


class ExchangePort(abc.ABC):
    """What S4 needs from a venue. All quantities/prices are Decimal on the instrument's filters."""

    venue: str

    @abc.abstractmethod
    async def load_markets(self, instruments: Sequence[Instrument]) -> None:
        """Register instruments (from instrument_registry) without relying on venue discovery."""

    @abc.abstractmethod
    async def server_time_ms(self) -> int: ...

    @abc.abstractmethod
    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder: ...

    @abc.abstractmethod
    async def cancel_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder: ...

    @abc.abstractmethod
    async def fetch_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        """Raises OrderNotFound when the venue has no such order."""

    @abc.abstractmethod
    async def fetch_open_orders(
        self, market: Market, symbol: str | None = None
    ) -> list[ExchangeOrder]: ...

    @abc.abstractmethod
    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]: ...

    @abc.abstractmethod
    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # ---- request weight (see .weight): what the venue says about its per-minute budget -------
    #: Binance counts spot and futures request weight separately (one budget per market)
    separate_weight_pools: bool = False
    #: the market whose pool general calls (server time) are charged to
    primary_market: Market = Market.SPOT

    def weight_limit_1m(self, market: Market) -> int | None:
        """The venue's request-weight limit per minute for `market` (None: unknown)."""
        return None

    def used_weight_1m(self, market: Market) -> int | None:
        """The venue's count of weight used this minute, from its latest answer (Binance's
        ``X-MBX-USED-WEIGHT-1M``; None: the venue does not say)."""
        return None

    # ---- protective orders (FUT margin/leverage, conditional orders, spot OCO) ---------------
    # Not abstract: a venue without them says so (`ProtectionUnsupported`) and S4 refuses the
    # intents that need them instead of executing unprotected.
    #: the venue can rest a stand-alone spot stop (STOP_LOSS_LIMIT) outside an OCO list
    spot_stop_orders: bool = False

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        raise ProtectionUnsupported(f"{self.venue}: set_leverage")

    async def set_margin_type(self, symbol: str, margin_type: str) -> bool:
        """ISOLATED | CROSSED. Idempotent: returns False when it already was (Binance -4046)."""
        raise ProtectionUnsupported(f"{self.venue}: set_margin_type")

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        raise ProtectionUnsupported(f"{self.venue}: fetch_positions")

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        """Spot: free/locked per asset. Futures: per margin asset, free = available balance and
        locked = what margin holds (wallet − available, never negative)."""
        raise ProtectionUnsupported(f"{self.venue}: fetch_balances")

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        """FUT STOP_MARKET / TAKE_PROFIT_MARKET as an algo order (`stop_price` = trigger)."""
        raise ProtectionUnsupported(f"{self.venue}: place_conditional")

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        raise ProtectionUnsupported(f"{self.venue}: cancel_conditional")

    async def fetch_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        raise ProtectionUnsupported(f"{self.venue}: fetch_conditional")

    async def fetch_open_conditionals(self, symbol: str | None = None) -> list[ConditionalOrder]:
        raise ProtectionUnsupported(f"{self.venue}: fetch_open_conditionals")

    # Spot OCO lists (LIMIT_MAKER take profit + STOP_LOSS(_LIMIT) stop; a leg's fill makes the
    # venue cancel the other). A venue without them raises `ProtectionUnsupported` and S4 runs
    # the client-side OCO guardian instead.
    async def place_oco(self, req: OcoRequest) -> OcoOrderList:
        raise ProtectionUnsupported(f"{self.venue}: place_oco")

    async def fetch_order_list(
        self,
        order_list_id: str | None = None,
        *,
        symbol: str | None = None,
        list_client_order_id: str | None = None,
    ) -> OcoOrderList:
        """By venue id or by list client id; raises OrderNotFound when there is no such list."""
        raise ProtectionUnsupported(f"{self.venue}: fetch_order_list")

    async def cancel_order_list(self, symbol: str, order_list_id: str) -> OcoOrderList:
        raise ProtectionUnsupported(f"{self.venue}: cancel_order_list")
