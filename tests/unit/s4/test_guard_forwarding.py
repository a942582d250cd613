"""Every port call through GuardedExchange reaches the inner adapter unchanged, charged its
weight to the right market's weight pool, in the right lane."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from typing import Any, TypeVar

import pytest

from s4_router.adapters.exchange.base import ExchangePort, OcoRequest, PlaceOrderRequest
from s4_router.adapters.exchange.guard import GuardedExchange
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from svckit.clock import ManualClock
from tradekit.enums import Market, OrderType, Side

T = TypeVar("T")
SPOT, FUT = Market.SPOT, Market.FUT
STOP = PlaceOrderRequest(FUT, "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, D("0.002"), "c-sl")
OCO = OcoRequest("BTCUSDT", Side.SELL, D("0.1"), limit_price=D("70000"), stop_price=D("60000"))

# (method, args, kwargs, market charged, urgent lane)
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], Market | None, bool]] = [
    ("server_time_ms", (), {}, None, True),
    ("cancel_order", (FUT, "BTCUSDT"), {"client_order_id": "c-1"}, FUT, True),
    ("cancel_order", (), {"market": SPOT, "symbol": "BTCUSDT", "venue_order_id": "9"}, SPOT, True),
    ("fetch_order", (SPOT, "BTCUSDT"), {"venue_order_id": "9"}, SPOT, False),
    ("fetch_open_orders", (FUT,), {}, FUT, False),
    ("fetch_my_trades", (SPOT, "BTCUSDT", 5), {}, SPOT, False),
    ("fetch_book", (FUT, "BTCUSDT", 5), {}, FUT, False),
    ("set_leverage", ("BTCUSDT", 20), {}, FUT, False),
    ("set_margin_type", ("BTCUSDT", "ISOLATED"), {}, FUT, False),
    ("fetch_positions", (["BTCUSDT"],), {}, FUT, False),
    ("fetch_balances", (SPOT,), {}, SPOT, False),
    ("place_conditional", (STOP,), {}, FUT, True),
    ("cancel_conditional", ("BTCUSDT",), {"algo_id": "3"}, FUT, True),
    ("fetch_conditional", ("BTCUSDT",), {"client_algo_id": "c-sl"}, FUT, False),
    ("fetch_open_conditionals", (), {}, FUT, False),
    ("place_oco", (OCO,), {}, SPOT, True),
    ("fetch_order_list", ("7",), {}, SPOT, False),
    ("cancel_order_list", ("BTCUSDT", "7"), {}, SPOT, True),
]
# Binance's published request weight (spot, USD-M futures) where it is not 1.
WEIGHTS = {
    "fetch_order": (4, 1),
    "fetch_open_orders": (6, 1),
    "fetch_my_trades": (20, 5),
    "fetch_book": (5, 2),
    "fetch_positions": (20, 5),
    "fetch_balances": (20, 5),
    "fetch_order_list": (4, 4),
}


def bound(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults included (as the port declares them)."""
    call = inspect.signature(getattr(ExchangePort, name)).bind(None, *args, **kwargs)
    call.apply_defaults()
    return {k: v for k, v in call.arguments.items() if k != "self"}


class Echo(ExchangePort):
    """Answers every port call with its own name and arguments."""

    venue = "echo"

    def __getattribute__(self, name: str) -> Any:
        if name in {c[0] for c in CASES}:

            async def echo(*args: Any, **kwargs: Any) -> object:
                return (name, bound(name, args, kwargs))

            return echo
        return super().__getattribute__(name)

    async def load_markets(self, instruments: Any) -> None: ...
    async def server_time_ms(self) -> int: ...  # type: ignore[empty-body]
    async def place_order(self, req: Any) -> Any: ...
    async def cancel_order(self, *a: Any, **k: Any) -> Any: ...
    async def fetch_order(self, *a: Any, **k: Any) -> Any: ...
    async def fetch_open_orders(self, *a: Any, **k: Any) -> Any: ...
    async def fetch_my_trades(self, *a: Any, **k: Any) -> Any: ...
    async def fetch_book(self, *a: Any, **k: Any) -> Any: ...
    async def close(self) -> None: ...


class Recording(GuardedExchange):
    def __init__(self) -> None:
        super().__init__(
            Echo(),
            breaker=CircuitBreaker(CircuitBreakerConfig()),
            clock=ManualClock(0),
            metrics=RouterMetrics(),
        )
        self.guarded: list[tuple[tuple[int, int], Market | None, bool]] = []

    async def _guard(
        self,
        call: Callable[[], Awaitable[T]],
        weight: tuple[int, int],
        market: Market | None = None,
        *,
        urgent: bool = False,
    ) -> T:
        self.guarded.append((weight, market, urgent))
        return await call()


@pytest.mark.parametrize(("method", "args", "kwargs", "market", "urgent"), CASES)
async def test_guarded_call_reaches_inner_port_charged_to_its_market_and_lane(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any], market: Market | None, urgent: bool
) -> None:
    g = Recording()
    answer = await getattr(g, method)(*args, **kwargs)
    assert answer == (method, bound(method, args, kwargs))
    assert g.guarded == [(WEIGHTS.get(method, (1, 1)), market, urgent)]
