"""Closed vocabularies shared by S3, S4 and the venue simulator."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class Market(StrEnum):
    FUT = "FUT"  # USDⓈ-M perpetual futures
    SPOT = "SPOT"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"  # post-only (spot); futures express it as LIMIT + GTX
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"  # post-only on Binance futures


class OrderStatus(StrEnum):
    """Order life cycle (the transition table lives in S4's domain)."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    # A submit whose outcome is unknown (timeout, dropped ack): resolved only from venue evidence.
    AMBIGUOUS = "AMBIGUOUS"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class OrderRole(StrEnum):
    """What an order S4 owns is for. The parent carries the intent; children execute it;
    linked orders (an OCO's legs, protective orders tied to a position) share a `link_group`."""

    PARENT = "PARENT"  # the intent itself (never sent to the venue)
    MAKER = "MAKER"  # post-only limit at the best price
    CHASE = "CHASE"  # post-only limit one tick more aggressive after a maker timeout
    TAKER = "TAKER"  # market order for the remainder
    STOP_LOSS = "STOP_LOSS"  # protective, reduce-only (FUT STOP_MARKET)
    TAKE_PROFIT = "TAKE_PROFIT"  # protective, reduce-only (FUT TAKE_PROFIT_MARKET)
    OCO_ABOVE = "OCO_ABOVE"  # spot OCO leg above the market
    OCO_BELOW = "OCO_BELOW"  # spot OCO leg below the market


class Contingency(StrEnum):
    """How orders of one `link_group` depend on each other."""

    OCO = "OCO"  # one cancels the other(s): any fill or trigger cancels the siblings
    OTO = "OTO"  # one triggers the other(s): protective orders placed once the entry fills


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class RequestResult(StrEnum):
    OK = "OK"
    FAIL = "FAIL"
