"""A port-to-port wrapper that feeds every venue answer to the circuit breaker.

Counted as errors: HTTP 5xx (`ExchangeUnavailable`) and 429/418 (`RateLimited`). Counted as
calls: every other answer, including definitive 4xx rejects (the venue is up and answering).
Not counted: timeouts and connection errors (no answer; they are retried and resolved), so a
flaky network does not masquerade as a venue outage — and the other way round.

The breaker itself is a pure state machine (`s4_router.policies.circuit_breaker`); this
adapter only observes it. It never refuses calls for the breaker: the router decides what may
enter.

It also keeps the request-weight budget (:mod:`.weight`): every call is charged before it is
sent, in the urgent lane (reduce-only orders, cancels, protective placements, server time) or
the normal one (paced near the limit, refused locally with `WeightExhausted` past
`max_wait_ms`; such a refusal never reached the venue and is not fed to the breaker), and the
venue's own count (`used_weight_1m`) corrects the budget after every answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
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
    OcoRequest,
    PlaceOrderRequest,
    Position,
    RateLimited,
)
from s4_router.adapters.exchange.weight import (
    Sleep,
    WeightBudget,
    WeightConfig,
    WeightExhausted,
    in_urgent_lane,
    weight_of,
)
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import CircuitBreaker, Transition
from svckit.clock import Clock
from tradekit.enums import Market
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
        weight: WeightConfig | None = None,
        weight_limit_1m: int | None = None,
        sleep: Sleep | None = None,
        metrics: RouterMetrics | None = None,
    ) -> None:
        """`weight`: the budget's pacing (None: no budget); `weight_limit_1m` overrides the
        limit the adapter reports per market (else `weight.limit_1m`)."""
        self.inner = inner
        self.venue = inner.venue
        self.breaker = breaker
        self.clock = clock
        self.on_transition = on_transition
        self.metrics = metrics
        self.separate_weight_pools = inner.separate_weight_pools
        self.primary_market = inner.primary_market
        self.budgets: dict[Market, WeightBudget] = {}
        if weight is not None:
            pools = list(Market) if inner.separate_weight_pools else [Market.SPOT]
            for m in pools:
                limit = weight_limit_1m or inner.weight_limit_1m(m) or weight.limit_1m
                cfg = WeightConfig(
                    limit_1m=limit,
                    pace_fraction=weight.pace_fraction,
                    max_wait_ms=weight.max_wait_ms,
                )
                self.budgets[m] = WeightBudget(cfg, clock=clock, sleep=sleep or asyncio.sleep)

    def budget(self, market: Market) -> WeightBudget | None:
        return self.budgets.get(market if self.separate_weight_pools else Market.SPOT)

    def weight_limit_1m(self, market: Market) -> int | None:
        b = self.budget(market)
        return b.cfg.limit_1m if b is not None else self.inner.weight_limit_1m(market)

    def used_weight_1m(self, market: Market) -> int | None:
        return self.inner.used_weight_1m(market)

    async def _guard(
        self,
        call: Callable[[], Awaitable[T]],
        op: str,
        market: Market | None = None,
        *,
        urgent: bool = False,
    ) -> T:
        m = market or self.primary_market
        budget = self.budget(m)
        if budget is not None:
            paced = budget.paced
            try:
                await budget.acquire(weight_of(op, m), urgent=urgent or in_urgent_lane())
            except WeightExhausted:
                if self.metrics is not None:
                    self.metrics.weight_paced.labels("refused").inc()
                raise
            if self.metrics is not None and budget.paced > paced:
                self.metrics.weight_paced.labels("waited").inc()
        try:
            result = await call()
        except (RateLimited, ExchangeUnavailable) as exc:
            if budget is not None:
                self._observe(budget, m)
                if isinstance(exc, RateLimited):
                    budget.on_rate_limited(exc.retry_after)
            await self._record(error=True)
            raise
        except (AmbiguousSubmit, ExchangeNetworkError):
            raise
        except ExchangeError:
            if budget is not None:
                self._observe(budget, m)
            await self._record(error=False)
            raise
        if budget is not None:
            self._observe(budget, m)
        await self._record(error=False)
        return result

    def _observe(self, budget: WeightBudget, market: Market) -> None:
        used = self.inner.used_weight_1m(market)
        if used is not None:
            budget.observe(used)
        if self.metrics is not None:
            self.metrics.weight_used.labels(market.value).set(budget.used())

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
        return await self._guard(self.inner.server_time_ms, "server_time_ms", urgent=True)

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        # A reduce-only order only ever closes: it takes the urgent lane.
        return await self._guard(
            lambda: self.inner.place_order(req), "place_order", req.market, urgent=req.reduce_only
        )

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
            ),
            "cancel_order",
            market,
            urgent=True,
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
            ),
            "fetch_order",
            market,
        )

    async def fetch_open_orders(
        self, market: Market, symbol: str | None = None
    ) -> list[ExchangeOrder]:
        return await self._guard(
            lambda: self.inner.fetch_open_orders(market, symbol), "fetch_open_orders", market
        )

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]:
        return await self._guard(
            lambda: self.inner.fetch_my_trades(market, symbol, since_ms), "fetch_my_trades", market
        )

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        return await self._guard(
            lambda: self.inner.fetch_book(market, symbol, depth), "fetch_book", market
        )

    async def close(self) -> None:
        await self.inner.close()

    # ---- protective orders: never refused here either (closes pass an OPEN breaker) ---------
    @property
    def spot_stop_orders(self) -> bool:  # type: ignore[override]
        return self.inner.spot_stop_orders

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        return await self._guard(
            lambda: self.inner.set_leverage(symbol, leverage), "set_leverage", Market.FUT
        )

    async def set_margin_type(self, symbol: str, margin_type: str) -> bool:
        return await self._guard(
            lambda: self.inner.set_margin_type(symbol, margin_type), "set_margin_type", Market.FUT
        )

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        return await self._guard(
            lambda: self.inner.fetch_positions(symbols), "fetch_positions", Market.FUT
        )

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        return await self._guard(
            lambda: self.inner.fetch_balances(market), "fetch_balances", market
        )

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        return await self._guard(
            lambda: self.inner.place_conditional(req), "place_conditional", Market.FUT, urgent=True
        )

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        return await self._guard(
            lambda: self.inner.cancel_conditional(
                symbol, algo_id=algo_id, client_algo_id=client_algo_id
            ),
            "cancel_conditional",
            Market.FUT,
            urgent=True,
        )

    async def fetch_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        return await self._guard(
            lambda: self.inner.fetch_conditional(
                symbol, algo_id=algo_id, client_algo_id=client_algo_id
            ),
            "fetch_conditional",
            Market.FUT,
        )

    async def fetch_open_conditionals(self, symbol: str | None = None) -> list[ConditionalOrder]:
        return await self._guard(
            lambda: self.inner.fetch_open_conditionals(symbol),
            "fetch_open_conditionals",
            Market.FUT,
        )

    async def place_oco(self, req: OcoRequest) -> OcoOrderList:
        return await self._guard(
            lambda: self.inner.place_oco(req), "place_oco", Market.SPOT, urgent=True
        )

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
            ),
            "fetch_order_list",
            Market.SPOT,
        )

    async def cancel_order_list(self, symbol: str, order_list_id: str) -> OcoOrderList:
        return await self._guard(
            lambda: self.inner.cancel_order_list(symbol, order_list_id),
            "cancel_order_list",
            Market.SPOT,
            urgent=True,
        )
