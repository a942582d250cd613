"""Builds the exchange adapter named by `S4_EXCHANGE`, plus the background jobs it needs (the
simulator's public market-data tap; market data itself is the feeder's, `python -m md_feeder`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from s4_router.adapters.exchange.base import ExchangePort
from s4_router.config import Settings
from svckit.clock import Clock
from svckit.errors import ConfigError
from svckit.redisio import RedisClient
from tradekit.instrument import Instrument

if TYPE_CHECKING:
    from s4_router.bootstrap import BackgroundTask


def make_exchange(
    settings: Settings,
    *,
    instruments: Mapping[str, Instrument],
    redis: RedisClient,
    clock: Clock,
    base_url: str | None = None,
) -> tuple[ExchangePort, list[BackgroundTask]]:
    """`base_url` (ccxt exchanges only; default `S4_EXCHANGE_BASE_URL`): send every ccxt
    request to that host instead of the exchange's, e.g. the simulator's Binance facade."""
    if settings.exchange == "sim":
        from s4_router.adapters.exchange.sim_client import SimExchange
        from s4_router.adapters.exchange.sim_market import SimMarketTap
        from venue.defaults import default_venue
        from venue.faults import FAULT_KNOBS, FaultInjector, profile_plan

        symbols = [s for s in settings.sim_symbols if s in instruments]
        # The seeded fault profile of `S4_SIM_FAULT_*` (none injected by default).
        plan = profile_plan(
            settings.sim_fault_rate,
            {kind: getattr(settings, f"sim_fault_{knob}") for knob, kind in FAULT_KNOBS.items()},
            retry_after_s=settings.sim_fault_retry_after_s,
            report_delay_ms=settings.sim_fault_report_delay_ms,
        )
        venue = default_venue(
            clock=clock,
            seed=settings.sim_seed,
            instruments=[instruments[s] for s in symbols],
            faults=FaultInjector(plan, seed=settings.sim_fault_seed),
            history_max=settings.sim_history_max,
            # S4 takes the venue's reports by subscription only (SimExchange): a buffer for
            # feed.drain() would only pile up (a report with an order snapshot each).
            report_buffer=0,
        )
        venue.limiter.limit = settings.sim_weight_limit
        jobs: list[BackgroundTask] = []
        if settings.sim_publish_market:
            tap = SimMarketTap(
                venue=venue, redis=redis, symbols=symbols, period_ms=settings.market_publish_ms
            )
            jobs.append(tap.run)
        return SimExchange(venue), jobs
    from s4_router.adapters.exchange.ccxt_client import CcxtExchange

    if settings.binance_key is None or settings.binance_secret is None:
        raise ConfigError(f"S4_EXCHANGE={settings.exchange} needs S4_BINANCE_KEY/S4_BINANCE_SECRET")
    exchange = CcxtExchange(
        settings.exchange,
        api_key=settings.binance_key.get_secret_value(),
        api_secret=settings.binance_secret.get_secret_value(),
        testnet=settings.testnet,
        base_url=base_url or settings.exchange_base_url,
        # The router proves an unanswered submit absent once this window has passed: the
        # venue must be told the same window.
        recv_window_ms=settings.recv_window_ms,
        # S4's own budget (GuardedExchange + .weight) paces every call from the venue's
        # X-MBX-USED-WEIGHT-1M with an urgent lane for closes; ccxt's limiter would queue a
        # reduce-only close FIFO behind polls (a POST waited 30 s) on its own rolling estimate.
        enable_rate_limit=False,
    )
    return exchange, []
