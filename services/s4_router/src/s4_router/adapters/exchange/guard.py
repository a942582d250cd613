"""A port-to-port wrapper that feeds every venue answer to the circuit breaker.

Counted as errors: HTTP 5xx (`ExchangeUnavailable`) and 429/418 (`RateLimited`). Counted as
calls: every other answer, including definitive 4xx rejects (the venue is up and answering).
Not counted: timeouts and connection errors (no answer; they are retried and resolved), so a
flaky network does not masquerade as a venue outage — and the other way round.

The breaker itself is a pure state machine (`s4_router.policies.circuit_breaker`); this
adapter only observes. It never refuses calls: the router decides what may enter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    AssetBalance,
    BookTop,
    ConditionalOrder,
    ExchangeError,
    ExchangeNetworkError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    ExchangeUnavailable,
    OcoOrderList,
    PlaceOrderRequest,
    Position,
    RateLimited,
)
from s4_router.policies.circuit_breaker import CircuitBreaker, Transition
from svckit.clock import Clock
from tradekit.enums import Market, Side
from tradekit.instrument import Instrument

T = TypeVar("T")

OnTransition = Callable[[Transition], Awaitable[None]]


class GuardedExchange(ExchangePort):
    def __init__(
        self,
        inner: ExchangePort,
        *,
        breaker: CircuitBreaker,
        clock: Clock,
        on_transition: OnTransition | None = None,
    ) -> None:
        self.inner = inner
        self.venue = inner.venue
        self.breaker = breaker
        self.clock = clock
        self.on_transition = on_transition

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await call()
        except (RateLimited, ExchangeUnavailable):
            await self._record(error=True)
            raise
        except (AmbiguousSubmit, ExchangeNetworkError):
            raise
        except ExchangeError:
            await self._record(error=False)
            raise
        await self._record(error=False)
        return result

    async def _record(self, *, error: bool) -> None:
        self.breaker.record(self.clock.now_ms(), error=error)
        await self.flush()

    async def flush(self) -> None:
        """Report pending breaker transitions (also those caused by time passing)."""
        self.breaker.state(self.clock.now_ms())
        for t in self.breaker.take_transitions():
            if self.on_transition is not None:
                await self.on_transition(t)

    # ---- the port -----------------------------------------------------------------------------
    async def load_markets(self, instruments: Sequence[Instrument]) -> None:
        await self.inner.load_markets(instruments)

    async def server_time_ms(self) -> int:
        return await self._guard(self.inner.server_time_ms)

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        return await self._guard(lambda: self.inner.place_order(req))

    async def cancel_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        return await self._guard(
            lambda: self.inner.cancel_order(
                market, symbol, venue_order_id=venue_order_id, client_order_id=client_order_id
            )
        )

    async def fetch_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        return await self._guard(
            lambda: self.inner.fetch_order(
                market, symbol, venue_order_id=venue_order_id, client_order_id=client_order_id
            )
        )

    async def fetch_open_orders(
        self, market: Market, symbol: str | None = None
    ) -> list[ExchangeOrder]:
        return await self._guard(lambda: self.inner.fetch_open_orders(market, symbol))

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]:
        return await self._guard(lambda: self.inner.fetch_my_trades(market, symbol, since_ms))

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        return await self._guard(lambda: self.inner.fetch_book(market, symbol, depth))

    async def close(self) -> None:
        await self.inner.close()

    # ---- protective orders: never refused here either (closes pass an OPEN breaker) ---------
    @property
    def spot_stop_orders(self) -> bool:  # type: ignore[override]
        return self.inner.spot_stop_orders

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        return await self._guard(lambda: self.inner.set_leverage(symbol, leverage))

    async def set_margin_type(self, symbol: str, margin_type: str) -> bool:
        return await self._guard(lambda: self.inner.set_margin_type(symbol, margin_type))

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        return await self._guard(lambda: self.inner.fetch_positions(symbols))

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        return await self._guard(lambda: self.inner.fetch_balances(market))

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        return await self._guard(lambda: self.inner.place_conditional(req))

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        return await self._guard(
            lambda: self.inner.cancel_conditional(
                symbol, algo_id=algo_id, client_algo_id=client_algo_id
            )
        )

    async def fetch_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        return await self._guard(
            lambda: self.inner.fetch_conditional(
                symbol, algo_id=algo_id, client_algo_id=client_algo_id
            )
        )

    async def fetch_open_conditionals(self, symbol: str | None = None) -> list[ConditionalOrder]:
        return await self._guard(lambda: self.inner.fetch_open_conditionals(symbol))

    async def place_oco(
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
    ) -> OcoOrderList:
        return await self._guard(
            lambda: self.inner.place_oco(
                symbol, side, qty, limit_price=limit_price, stop_price=stop_price,
                stop_limit_price=stop_limit_price, list_client_order_id=list_client_order_id,
                limit_client_order_id=limit_client_order_id,
                stop_client_order_id=stop_client_order_id,
            )
        )  # fmt: skip

    async def fetch_order_list(
        self,
        order_list_id: str | None = None,
        *,
        symbol: str | None = None,
        list_client_order_id: str | None = None,
    ) -> OcoOrderList:
        return await self._guard(
            lambda: self.inner.fetch_order_list(
                order_list_id, symbol=symbol, list_client_order_id=list_client_order_id
            )
        )

    async def cancel_order_list(self, symbol: str, order_list_id: str) -> OcoOrderList:
        return await self._guard(lambda: self.inner.cancel_order_list(symbol, order_list_id))
