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
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    ExchangeError,
    ExchangeNetworkError,
    ExchangeOrder,
    ExchangePort,
    ExchangeUnavailable,
    PlaceOrderRequest,
    RateLimited,
)
from s4_router.adapters.exchange.weight import (
    URGENT,
    Sleep,
    WeightBudget,
    WeightConfig,
    WeightExhausted,
)
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import CircuitBreaker, Transition
from svckit.clock import Clock
from tradekit.enums import Market
from tradekit.instrument import Instrument

T = TypeVar("T")
P = ParamSpec("P")

OnTransition = Callable[[Transition], Awaitable[None]]
Port = Callable[Concatenate[ExchangePort, P], Coroutine[Any, Any, T]]
Guarded = Callable[Concatenate["GuardedExchange", P], Coroutine[Any, Any, T]]


# A call's estimated request weight: (spot, USD-M futures), Binance's published REST figures
# (the venue's header corrects them).
Weight = tuple[int, int]


def _forward(
    method: Port[P, T],
    market: Market | None = None,
    *,
    urgent: bool = False,
    weight: Weight = (1, 1),
) -> Guarded[P, T]:
    """The port `method`, called on the inner adapter with the same arguments through
    :meth:`GuardedExchange._guard`, charged `weight` to `market` — or, when None, to the
    call's own first argument `market` (none: the venue's primary market)."""
    name = method.__name__
    by_arg = market is None and list(inspect.signature(method).parameters)[1:2] == ["market"]

    async def call(self: GuardedExchange, /, *args: P.args, **kwargs: P.kwargs) -> T:
        m = market
        if by_arg:
            m = cast(Market, kwargs["market"] if "market" in kwargs else args[0])
        return await self._guard(
            lambda: getattr(self.inner, name)(*args, **kwargs), weight, m, urgent=urgent
        )

    # Not functools.wraps: it would copy the port's __isabstractmethod__ along.
    call.__name__, call.__qualname__ = name, f"GuardedExchange.{name}"
    return call


class GuardedExchange(ExchangePort):
    def __init__(
        self,
        inner: ExchangePort,
        *,
        breaker: CircuitBreaker,
        clock: Clock,
        metrics: RouterMetrics,
        on_transition: OnTransition | None = None,
        weight: WeightConfig | None = None,
        weight_limit_1m: int | None = None,
        sleep: Sleep | None = None,
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
                cfg = dataclasses.replace(weight, limit_1m=limit)
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
        weight: Weight,
        market: Market | None = None,
        *,
        urgent: bool = False,
    ) -> T:
        m = market or self.primary_market
        budget = self.budget(m)
        if budget is not None:
            paced = budget.paced
            try:
                w = weight[1] if m is Market.FUT else weight[0]
                await budget.acquire(w, urgent=urgent or URGENT.get())
            except WeightExhausted:
                self.metrics.weight_paced.labels("refused").inc()
                raise
            if budget.paced > paced:
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

    # ---- the port: each call is the inner adapter's, through `_guard` (see `_forward`) ----------
    async def load_markets(self, instruments: Sequence[Instrument]) -> None:
        await self.inner.load_markets(instruments)

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        # A reduce-only order only ever closes: it takes the urgent lane.
        return await self._guard(
            lambda: self.inner.place_order(req), (1, 1), req.market, urgent=req.reduce_only
        )

    async def close(self) -> None:
        await self.inner.close()

    server_time_ms = _forward(ExchangePort.server_time_ms, urgent=True)
    cancel_order = _forward(ExchangePort.cancel_order, urgent=True)
    fetch_order = _forward(ExchangePort.fetch_order, weight=(4, 1))
    fetch_open_orders = _forward(ExchangePort.fetch_open_orders, weight=(6, 1))
    fetch_my_trades = _forward(ExchangePort.fetch_my_trades, weight=(20, 5))
    fetch_book = _forward(ExchangePort.fetch_book, weight=(5, 2))  # depth up to 50 levels

    # ---- protective orders: never refused here either (closes pass an OPEN breaker) ---------
    @property
    def spot_stop_orders(self) -> bool:  # type: ignore[override]
        return self.inner.spot_stop_orders

    set_leverage = _forward(ExchangePort.set_leverage, Market.FUT)
    set_margin_type = _forward(ExchangePort.set_margin_type, Market.FUT)
    fetch_positions = _forward(ExchangePort.fetch_positions, Market.FUT, weight=(20, 5))
    fetch_balances = _forward(ExchangePort.fetch_balances, weight=(20, 5))
    place_conditional = _forward(ExchangePort.place_conditional, Market.FUT, urgent=True)
    cancel_conditional = _forward(ExchangePort.cancel_conditional, Market.FUT, urgent=True)
    fetch_conditional = _forward(ExchangePort.fetch_conditional, Market.FUT)
    fetch_open_conditionals = _forward(ExchangePort.fetch_open_conditionals, Market.FUT)
    place_oco = _forward(ExchangePort.place_oco, Market.SPOT, urgent=True)
    fetch_order_list = _forward(ExchangePort.fetch_order_list, Market.SPOT, weight=(4, 4))
    cancel_order_list = _forward(ExchangePort.cancel_order_list, Market.SPOT, urgent=True)
