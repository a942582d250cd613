"""Helpers for running the exchange-port contract against ccxt → the venue's Binance facade.

One uvicorn server per test module serves a :class:`SwappableApp`; each test plugs a fresh
venue + facade into it, so tests stay isolated without paying a server start each.

The venue behind the facade runs on a :class:`TrackingClock` (time flows like a
real server's, so ccxt's signed timestamps stay inside recvWindow) with market steps an hour
apart: within a test the book only changes when the test changes it, as with the in-process
harness's ManualClock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from s4_router.adapters.exchange.ccxt_client import CcxtExchange, ExchangeId
from tests.tracking_clock import TrackingClock
from venue.defaults import default_venue
from venue.facade import create_facade
from venue.venue import Venue

API_KEY = "contract-key"
API_SECRET = "contract-secret"
START_MS = 1_700_000_000_000
MARKET_STEP_MS = 3_600_000  # no market step during a test
CCXT_TIMEOUT_MS = 600  # the client gives up on a stalled answer after this long


class SwappableApp:
    """An ASGI app whose target can be replaced between tests."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("no facade plugged in")
        await self.app(scope, receive, send)


def facade_venue(seed: int = 11) -> tuple[Venue, TrackingClock]:
    clock = TrackingClock(START_MS)
    return default_venue(clock=clock, seed=seed, step_ms=MARKET_STEP_MS), clock


def plug(slot: SwappableApp, venue: Venue, *, stall_s: float = 5.0) -> None:
    slot.app = create_facade(venue, api_key=API_KEY, api_secret=API_SECRET, stall_s=stall_s)


@asynccontextmanager
async def closing(ex: CcxtExchange) -> AsyncIterator[CcxtExchange]:
    """`ex`, closed on the way out."""
    try:
        yield ex
    finally:
        await ex.close()


def ccxt_exchange(
    base_url: str,
    exchange_id: ExchangeId = "binance",
    *,
    api_key: str = API_KEY,
    api_secret: str = API_SECRET,
    timeout_ms: int = CCXT_TIMEOUT_MS,
    **kw: Any,
) -> CcxtExchange:
    return CcxtExchange(
        exchange_id,
        api_key=api_key,
        api_secret=api_secret,
        base_url=base_url,
        timeout_ms=timeout_ms,
        **kw,
    )
