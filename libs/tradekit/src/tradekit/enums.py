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


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class Decision(StrEnum):
    OPEN = "open"
    SKIP = "skip"


class RequestResult(StrEnum):
    OK = "OK"
    FAIL = "FAIL"
