"""Venue calls with retries (tenacity, exponential backoff honouring Retry-After) and the
exactly-once submit.

Exactly-once rests on four rules:

1. one client order id per child, derived from the parent (`{client_order_id}-E{n}`), never
   a new id for a retry;
2. answers that prove the request was *not* processed — 429 (rejected before processing),
   connection refused — are retried (after the back-off) with the same id;
3. answers that leave the outcome unknown — a timeout, a dropped ack, a 5xx (Binance: "the
   execution status is UNKNOWN") — make the child AMBIGUOUS: from then on only venue evidence
   counts. We query the client order id (then trades under it); found ⇒ that *is* our order.
   Not found proves absence only once the request can no longer land: a signed request older
   than the venue's `recvWindow` is refused, so `S4_RECV_WINDOW_MS` after the last attempt an
   absent order is absent and the same id may be sent again. Before that we wait and ask again;
4. attempts exhausted without an answer ⇒ `Unresolved`: the child stays AMBIGUOUS and the
   execution keeps resolving it on later steps. Never assumed rejected.

A `guard` (S4 passes `lock:pos:{symbol}`) is held around each single request, never across a
back-off or a retry: a rate-limited venue must not make other decisions on the symbol wait. A
guard that cannot be had ends the send as `Unresolved` at once (deferred to the next step).

`sleep` and `clock` are injected: production waits, tests advance a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    BookTop,
    DuplicateOrder,
    ExchangeNetworkError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    ExchangeUnavailable,
    OrderNotFound,
    PlaceOrderRequest,
    RateLimited,
    RetryableError,
)
from s4_router.metrics import RouterMetrics
from svckit.clock import Clock
from svckit.redisio import LockNotAcquired
from tradekit.enums import Market, OrderStatus
from tradekit.money import ZERO

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Guard = Callable[[], contextlib.AbstractAsyncContextManager[object]]


class Unresolved(Exception):
    """A submit whose outcome the venue would not tell us (yet): keep the child AMBIGUOUS.
    `sent_at_ms`: the last attempt that may have reached the venue (None: provably none)."""

    def __init__(self, message: str, *, sent_at_ms: int | None) -> None:
        super().__init__(message)
        self.sent_at_ms = sent_at_ms


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_s: float = 0.05
    max_s: float = 2.0


@dataclass(eq=False)
class VenueOps:
    exchange: ExchangePort
    _: KW_ONLY
    metrics: RouterMetrics
    clock: Clock
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    recv_window_ms: int = 5000

    def landing_window_open(self, sent_at_ms: int | None) -> bool:
        """An attempt sent at `sent_at_ms` could still reach the venue."""
        return sent_at_ms is not None and self.clock.now_ms() - sent_at_ms < self.recv_window_ms

    # ---- retry machinery ----------------------------------------------------------------------
    def _delay(self, attempt: int, exc: BaseException | None) -> float:
        delay = min(self.retry.base_s * 2.0 ** (attempt - 1), self.retry.max_s)
        if isinstance(exc, RateLimited) and exc.retry_after:
            delay = max(delay, min(float(exc.retry_after), self.retry.max_s))
        return delay

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self._delay(state.attempt_number, exc)

    def _count(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None:
            self.metrics.venue_errors.labels(type(exc).__name__).inc()

    async def call(self, fn: Callable[[], Awaitable[T]], *, guard: Guard | None = None) -> T:
        """An idempotent call (query, book, cancel), retried on retryable errors; `guard` is
        held around each attempt only (LockNotAcquired propagates: deferred)."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableError),
            sleep=self.sleep,
            before_sleep=self._count,
            reraise=True,
        ):
            with attempt:
                if guard is None:
                    return await fn()
                async with guard():
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
        """Trades under `client_order_id` since `since_ms` (our clock). The venue stamps trades
        with *its* clock, which may be behind ours by up to the recvWindow it accepts our
        signed requests in: the query starts that much earlier (rows are filtered by client
        id anyway), else a fill stamped "before" the child was sent would never be booked."""
        since = None if since_ms is None else max(0, since_ms - self.recv_window_ms)
        trades = await self.call(lambda: self.exchange.fetch_my_trades(market, symbol, since))
        return [t for t in trades if t.client_order_id == client_order_id]

    async def resolve(
        self, req: PlaceOrderRequest, *, since_ms: int | None, with_trades: bool = True
    ) -> ExchangeOrder | None:
        """Venue evidence for a submit: the order by client id, else (`with_trades`) trades
        under that id (venues forget some finished orders), else None."""
        try:
            return await self.fetch(req.market, req.symbol, req.client_order_id)
        except OrderNotFound:
            pass
        if not with_trades:
            return None
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
        self,
        req: PlaceOrderRequest,
        *,
        since_ms: int | None,
        sent_at_ms: int | None = None,
        before_attempt: Callable[[int], Awaitable[None]] | None = None,
        guard: Guard | None = None,
    ) -> ExchangeOrder:
        """Place `req` exactly once (module rules). `sent_at_ms`: an earlier attempt of this id
        may have reached the venue then (None: none did). `before_attempt(now)` runs before
        every request so the caller can persist the attempt time first (a crash mid-request
        must not shorten the landing window on restart). Raises DefinitiveError (the venue
        said no) or Unresolved (ask again later)."""
        last: BaseException | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if sent_at_ms is not None:
                window_open = self.landing_window_open(sent_at_ms)
                try:
                    found = await self.resolve(req, since_ms=since_ms, with_trades=not window_open)
                except RetryableError as exc:
                    last, found, window_open = exc, None, True  # no evidence either way
                if found is not None:
                    return found
                if window_open:
                    if attempt < self.retry.attempts:
                        await self.sleep(self._delay(attempt, last))
                    continue
                sent_at_ms = None  # provably absent: the same id may go again
            attempt_ms = self.clock.now_ms()
            try:
                async with guard() if guard is not None else contextlib.nullcontext():
                    if before_attempt is not None:
                        await before_attempt(attempt_ms)
                    return await self.exchange.place_order(req)
            except LockNotAcquired as exc:
                # Not sent now: the next step asks the venue (earlier attempts) and sends.
                raise Unresolved(f"{req.client_order_id}: {exc}", sent_at_ms=sent_at_ms) from exc
            except DuplicateOrder as exc:
                # The id is live at the venue: an earlier attempt landed; find it.
                last, sent_at_ms = exc, attempt_ms
            except (RateLimited, ExchangeNetworkError) as exc:
                last = exc  # refused before processing: nothing landed
                self.metrics.venue_errors.labels(type(exc).__name__).inc()
            except (AmbiguousSubmit, ExchangeUnavailable) as exc:
                last, sent_at_ms = exc, attempt_ms
                self.metrics.venue_errors.labels(type(exc).__name__).inc()
                self.metrics.ambiguous.inc()
            if attempt < self.retry.attempts:
                await self.sleep(self._delay(attempt, last))
        raise Unresolved(f"{req.client_order_id}: {last}", sent_at_ms=sent_at_ms)

    async def cancel(
        self, market: Market, symbol: str, client_order_id: str, *, guard: Guard | None = None
    ) -> ExchangeOrder | None:
        """Cancel by client id; None when the venue has no open order of that id."""
        try:
            return await self.call(
                lambda: self.exchange.cancel_order(market, symbol, client_order_id=client_order_id),
                guard=guard,
            )
        except OrderNotFound:
            return None
