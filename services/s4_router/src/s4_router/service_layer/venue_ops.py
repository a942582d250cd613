"""Venue calls with retries (tenacity, exponential backoff honouring Retry-After) and the
exactly-once submit.

Exactly-once rests on three rules:

1. one client order id per child, derived from the parent (`{client_order_id}-E{n}`), never
   a new id for a retry;
2. before any resend — after a timeout, a dropped ack, a 5xx (Binance: "execution status
   UNKNOWN") or a 429 — ask the venue for that client order id, then for trades under it:
   found ⇒ that *is* our order; absent ⇒ sending again is safe (the venue also refuses a
   second open order with the same id);
3. attempts exhausted without an answer ⇒ `Unresolved`: the child stays AMBIGUOUS and the
   execution keeps resolving it from venue evidence on later steps. Never assumed rejected.

`sleep` is injected: production waits, tests advance a manual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    BookTop,
    DuplicateOrder,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    OrderNotFound,
    PlaceOrderRequest,
    RateLimited,
    RetryableError,
)
from s4_router.metrics import RouterMetrics
from tradekit.enums import Market, OrderStatus
from tradekit.money import ZERO

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class Unresolved(Exception):
    """A submit whose outcome the venue would not tell us (yet): keep the child AMBIGUOUS."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_s: float = 0.05
    max_s: float = 2.0


class VenueOps:
    def __init__(
        self,
        exchange: ExchangePort,
        *,
        metrics: RouterMetrics,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.exchange = exchange
        self.metrics = metrics
        self.retry = retry or RetryPolicy()
        self.sleep: Sleep = sleep or asyncio.sleep

    # ---- retry machinery ----------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        delay = min(self.retry.base_s * 2.0 ** (state.attempt_number - 1), self.retry.max_s)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_after:
            delay = max(delay, min(float(exc.retry_after), self.retry.max_s))
        return delay

    def _count(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None:
            self.metrics.venue_errors.labels(type(exc).__name__).inc()
            if isinstance(exc, AmbiguousSubmit):
                self.metrics.ambiguous.inc()

    def _retrying(self, *kinds: type[BaseException]) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(kinds),
            sleep=self.sleep,
            before_sleep=self._count,
            reraise=True,
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """An idempotent call (query, book, cancel), retried on retryable errors."""
        async for attempt in self._retrying(RetryableError):
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- reads --------------------------------------------------------------------------------
    async def book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        return await self.call(lambda: self.exchange.fetch_book(market, symbol, depth))

    async def fetch(self, market: Market, symbol: str, client_order_id: str) -> ExchangeOrder:
        """The order by client id; raises OrderNotFound."""
        return await self.call(
            lambda: self.exchange.fetch_order(market, symbol, client_order_id=client_order_id)
        )

    async def trades_of(
        self, market: Market, symbol: str, *, client_order_id: str, since_ms: int | None
    ) -> list[ExchangeTrade]:
        trades = await self.call(lambda: self.exchange.fetch_my_trades(market, symbol, since_ms))
        return [t for t in trades if t.client_order_id == client_order_id]

    async def resolve(
        self, req: PlaceOrderRequest, *, since_ms: int | None
    ) -> ExchangeOrder | None:
        """Venue evidence for a submit: the order by client id, else trades under that id
        (venues forget some finished orders), else None — it never reached the venue."""
        try:
            return await self.fetch(req.market, req.symbol, req.client_order_id)
        except OrderNotFound:
            pass
        trades = await self.trades_of(
            req.market, req.symbol, client_order_id=req.client_order_id, since_ms=since_ms
        )
        if not trades:
            return None
        filled = sum((t.qty for t in trades), ZERO)
        notional = sum((t.qty * t.price for t in trades), ZERO)
        return ExchangeOrder(
            venue_order_id=trades[0].venue_order_id,
            client_order_id=req.client_order_id,
            market=req.market,
            symbol=req.symbol,
            side=req.side,
            type=req.type,
            # Not queryable yet traded: it is finished (an open order is always queryable).
            status=OrderStatus.FILLED if filled >= req.qty else OrderStatus.EXPIRED,
            qty=req.qty,
            filled_qty=filled,
            avg_price=notional / filled if filled else None,
            price=req.price,
            reduce_only=req.reduce_only,
            ts=max(t.ts for t in trades),
            trades=tuple(trades),
        )

    # ---- writes -------------------------------------------------------------------------------
    async def send(
        self, req: PlaceOrderRequest, *, since_ms: int | None, resolve_first: bool = False
    ) -> ExchangeOrder:
        """Place `req` exactly once. Raises DefinitiveError (the venue said no) or Unresolved."""
        first = True
        try:
            async for attempt in self._retrying(RetryableError, AmbiguousSubmit, Unresolved):
                with attempt:
                    if resolve_first or not first:
                        found = await self.resolve(req, since_ms=since_ms)
                        if found is not None:
                            return found
                    first = False
                    try:
                        return await self.exchange.place_order(req)
                    except DuplicateOrder as dup:
                        # The id is live at the venue: an earlier attempt landed.
                        found = await self.resolve(req, since_ms=since_ms)
                        if found is not None:
                            return found
                        raise Unresolved(f"{req.client_order_id}: duplicate but not found") from dup
        except (RetryableError, AmbiguousSubmit, Unresolved) as exc:
            # Last word from the venue before we give up for now.
            try:
                found = await self.resolve(req, since_ms=since_ms)
            except RetryableError:
                found = None
            if found is not None:
                return found
            raise Unresolved(f"{req.client_order_id}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def cancel(
        self, market: Market, symbol: str, client_order_id: str
    ) -> ExchangeOrder | None:
        """Cancel by client id; None when the venue has no open order of that id."""
        try:
            return await self.call(
                lambda: self.exchange.cancel_order(market, symbol, client_order_id=client_order_id)
            )
        except OrderNotFound:
            return None


def qty_sum(trades: list[ExchangeTrade]) -> Decimal:
    return sum((t.qty for t in trades), ZERO)
