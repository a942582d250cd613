"""Composition root of S4: builds every dependency from Settings (nothing connects at import).

Dependencies are keyword-only so tests pass a real Redis, a store, an exchange adapter, a
clock and a sleep function explicitly; background work (the `orders:intent` consumer, the
execution tasks, the orphan sweep, the venue watch, the simulator's market pump) starts in
`start_background()`, called by the FastAPI lifespan.

Closing: what `bootstrap()` opens itself (Redis, the store, the exchange adapter, the venue's
order-update subscription) is registered on one `AsyncExitStack` the moment it is opened; the
container closes it in reverse order after its loops, and `bootstrap()` closes it when start-up
fails half-way. What a caller passed in stays the caller's to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from s4_router.adapters.exchange.base import ExchangePort
from s4_router.adapters.exchange.guard import GuardedExchange
from s4_router.adapters.exchange.weight import WeightConfig
from s4_router.adapters.leases import Leases
from s4_router.adapters.orders_repo import StoreOrdersRepository
from s4_router.config import Settings
from s4_router.entrypoints.schemas import Health
from s4_router.entrypoints.stream_consumer import IntentConsumer
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from s4_router.policies.clock_guard import ClockSkewGuard
from s4_router.policies.pretrade import PretradeLimits
from s4_router.policies.route_table import RouteTableError
from s4_router.service_layer.book_source import BookSource
from s4_router.service_layer.fill_book import FillBook
from s4_router.service_layer.manager import ExecutionManager
from s4_router.service_layer.margin import MarginSetup
from s4_router.service_layer.protection import ProtectionService
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.quality_tracker import QualityTracker
from s4_router.service_layer.reconciler import Reconciler
from s4_router.service_layer.route_table_watch import RouteTableWatcher, load_table, policy_limits
from s4_router.service_layer.router import OrderRouter
from s4_router.service_layer.venue_ops import RetryPolicy, Sleep, VenueOps
from s4_router.service_layer.watch import VenueWatch
from svckit import keys, memtrim
from svckit.clock import Clock, WallClock
from svckit.errors import ConfigError
from svckit.infra import open_infra
from svckit.redisio import RedisClient, ping
from svckit.store.base import DocumentStore
from svckit.store.seed import instrument_from_doc
from tradekit.enums import Market

log = logging.getLogger(__name__)

BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class S4Container:
    settings: Settings
    redis: RedisClient
    store: DocumentStore
    exchange: ExchangePort
    router: OrderRouter
    consumer: IntentConsumer
    metrics: RouterMetrics
    manager: ExecutionManager
    watch: VenueWatch
    config_watch: RouteTableWatcher
    protection: ProtectionService | None = None
    reconciler: Reconciler | None = None
    background: list[BackgroundTask] = field(default_factory=list)
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    unsubscribe: Callable[[], None] | None = None  # from the venue's order updates (idempotent)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_background(self) -> None:
        # Before taking new work: where does the clock stand, what was left unfinished?
        with contextlib.suppress(Exception):
            await self.watch.check()
        rearmed, resumed = await self.recover_orphans()
        if rearmed or resumed:
            log.info(
                "startup recovery re-armed %d protections, resumed %d executions", rearmed, resumed
            )
        background = self.settings.background_execution
        if self.protection is not None and background:
            self._spawn(self.protection.run, "protection")
        if self.reconciler is not None:
            # Venue vs store before new work: orphans, stale protectives, missing fills.
            try:
                await self.reconciler.run_once()
            except Exception:
                log.exception("startup reconciliation failed; the periodic run retries")
            if background:
                self._spawn(self.reconciler.run, "reconcile")
        self._spawn(self.consumer.run, "intents")
        self._spawn(self.watch.run, "venue-watch")
        self._spawn(self.config_watch.run, "config-watch")
        if background:
            self._spawn(self._sweep, "orphan-sweep")
        for job in self.background:
            self._spawn(job)

    def _spawn(self, job: BackgroundTask, name: str | None = None) -> None:
        self.tasks.append(asyncio.create_task(job(self.stop), name=name))

    async def _sweep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=self.settings.recovery_interval_ms / 1000
                )
            if stop.is_set():
                return
            await self.recover_orphans()

    async def recover_orphans(self) -> tuple[int, int]:
        """Take over what a dead replica left: (protections re-armed, executions resumed).
        The two halves fail alone (a failing execution listing must not leave a position's
        stop undriven), and protections go first: a position at the venue needs its stop more
        than an entry needs finishing."""
        rearmed = resumed = 0
        if self.protection is not None:
            try:
                rearmed = await self.protection.recover()
            except Exception:
                log.exception("orphan sweep: re-arming protections failed; retried next round")
        try:
            resumed = await self.router.recovery.recover()
        except Exception:
            log.exception("orphan sweep: resuming executions failed; retried next round")
        return rearmed, resumed

    async def health(self) -> Health:
        redis_ok = await ping(self.redis)
        store_ok = await self.store.ping()
        try:
            server_ms = await asyncio.wait_for(self.exchange.server_time_ms(), timeout=2)
            exch = {"ok": True, "venue": self.exchange.venue, "server_time": server_ms}
        except Exception as exc:
            exch = {"ok": False, "venue": self.exchange.venue, "error": str(exc)}
        ok = redis_ok and store_ok and bool(exch["ok"])
        now = self.router.clock.now_ms()
        breaker = self.router.breaker
        rate, calls = breaker.error_rate(now)
        skew = self.router.skew
        guarded = self.router.exchange
        budgets = guarded.budgets if isinstance(guarded, GuardedExchange) else {}
        return Health(
            status="ok" if ok else "degraded",
            exchange=exch,
            redis=redis_ok,
            store={"ok": store_ok, "kind": self.store.name},
            route_table_rev=self.router.route_table.rev,  # hot-reloaded: the one in use
            config=self.config_watch.health(),
            circuit_breaker=breaker.state(now).value,
            breaker={
                "error_rate": round(rate, 4),
                "calls": calls,
                "threshold": breaker.cfg.threshold,
                "reopens_at": breaker.reopens_at(),
            },
            clock={
                "skew_ms": skew.skew_ms,
                "max_skew_ms": skew.max_skew_ms,
                "ok": skew.ok,
                "max_rtt_ms": skew.max_rtt_ms,
                "discarded": skew.discarded,
            },
            entries_allowed=breaker.allows_entry(now) and skew.ok,
            executions={"active": len(self.manager.active)},
            consumer={
                "group": self.consumer.group,
                "name": self.consumer.consumer,
                "healthy": self.consumer.healthy,
                "handled": self.consumer.handled,
            },
            reconcile=self.reconciler.health() if self.reconciler is not None else {},
            weight={
                m.value: {
                    "used": b.used(),
                    "limit": b.cfg.limit_1m,
                    "pace_at": b.pace_at,
                    "paced": b.paced,
                    "refused": b.refused,
                }
                for m, b in budgets.items()
            },
        )

    async def aclose(self) -> None:
        """Stop in order, Redis last: the loops end on `stop` at their next turn (an intent
        being handled is finished and its events published), executions end between steps;
        whatever outlives `S4_SHUTDOWN_GRACE_MS` is cancelled."""
        self.stop.set()
        self.manager.begin_shutdown()  # executions wind down alongside the loops
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace_ms / 1000
        if self.tasks and deadline > loop.time():
            await asyncio.wait(self.tasks, timeout=deadline - loop.time())
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks.clear()
        await self.manager.shutdown(max(0.0, deadline - loop.time()))
        if self.protection is not None:
            await self.protection.shutdown()
        await self.resources.aclose()  # empty once closed: aclose() may run twice


async def bootstrap(
    settings: Settings,
    *,
    redis: RedisClient | None = None,
    store: DocumentStore | None = None,
    exchange: ExchangePort | None = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
    seed: bool = True,
) -> S4Container:
    # Each resource is registered as it is opened; the container takes them over only once
    # start-up has succeeded (a failure half-way closes them here, in reverse order).
    async with AsyncExitStack() as stack:
        clock = clock or WallClock()
        path = settings.route_table_path
        try:
            route_table = load_table(path)
        except (OSError, ValueError, RouteTableError) as exc:
            raise ConfigError(f"S4_ROUTE_TABLE_PATH={str(path)!r}: {exc}") from None
        infra = await open_infra(stack, settings, prefix="S4_", redis=redis, store=store, seed=seed)
        redis, store = infra.redis, infra.store
        docs = await store.find("instrument_registry")
        instruments = {i.symbol: i for i in map(instrument_from_doc, docs)}
        background: list[BackgroundTask] = []
        if exchange is None:
            from s4_router.adapters.exchange.factory import make_exchange

            exchange, background = make_exchange(
                settings, instruments=instruments, redis=redis, clock=clock
            )
            stack.push_async_callback(exchange.close)
        await exchange.load_markets(list(instruments.values()))
        if settings.malloc_trim_interval_s > 0:
            # Freed C-heap memory back to the OS (svckit.memtrim: the soak's RSS growth).
            background.append(
                functools.partial(memtrim.trim_loop, interval_s=settings.malloc_trim_interval_s)
            )
        metrics = RouterMetrics()
        owner = settings.consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        breaker = CircuitBreaker(
            CircuitBreakerConfig(
                window_ms=int(settings.cb_error_rate_window.total_seconds() * 1000),
                threshold=settings.cb_error_rate_thresh,
                min_calls=settings.cb_min_calls,
                open_ms=settings.cb_open_ms,
                max_open_ms=max(settings.cb_max_open_ms, settings.cb_open_ms),
            )
        )
        metrics.cb_state.set(0)
        guarded = GuardedExchange(
            exchange,
            breaker=breaker,
            clock=clock,
            metrics=metrics,
            sleep=sleep,
            weight=WeightConfig(
                pace_fraction=settings.weight_pace_fraction, max_wait_ms=settings.weight_max_wait_ms
            ),
            weight_limit_1m=settings.weight_limit_1m or None,
        )
        publisher = Publisher(redis, clock=clock, metrics=metrics)
        ops = VenueOps(
            guarded,
            metrics=metrics,
            retry=RetryPolicy(
                attempts=settings.retry_attempts,
                base_s=settings.retry_base_ms / 1000,
                max_s=settings.retry_max_ms / 1000,
            ),
            sleep=sleep or asyncio.sleep,
            clock=clock,
            recv_window_ms=settings.recv_window_ms,
        )
        leases = Leases(redis, owner=f"s4:{owner}", ttl_ms=settings.exec_lease_ms)
        orders = StoreOrdersRepository(store)
        fills = FillBook(orders=orders, redis=redis, publisher=publisher, metrics=metrics)
        manager = ExecutionManager(
            leases=leases,
            clock=clock,
            metrics=metrics,
            poll_ms=settings.poll_interval_ms,
            autorun=settings.background_execution,
        )
        quality = QualityTracker(
            metrics=metrics,
            publisher=publisher,
            window=settings.quality_window,
            min_samples=settings.quality_min_samples,
            maker_ratio_alert=settings.maker_fill_ratio_alert,
            balance_alert_count=settings.insufficient_balance_alert_count,
            balance_window_ms=int(settings.insufficient_balance_window.total_seconds() * 1000),
            cooldown_ms=int(settings.alert_cooldown.total_seconds() * 1000),
        )
        skew = ClockSkewGuard(settings.clock_skew_max_ms, max_rtt_ms=settings.clock_skew_max_rtt_ms)
        books = BookSource(
            redis=redis,
            ops=ops,
            clock=clock,
            metrics=metrics,
            max_age_ms=settings.book_max_age_ms,
            # What the feeder (md_feeder) publishes: from the simulator one book that serves both
            # markets; from a live venue the futures book where listed, else spot.
            published_market=None
            if settings.exchange == "sim"
            else {
                s: Market.FUT if Market.FUT in i.markets else Market.SPOT
                for s, i in instruments.items()
            },
        )
        protection = (
            ProtectionService(
                store=store,
                orders=orders,
                exchange=guarded,
                ops=ops,
                clock=clock,
                metrics=metrics,
                publisher=publisher,
                leases=leases,
                fills=fills,
                instruments=instruments,
                working_type=settings.working_type,
                poll_ms=settings.protection_poll_ms,
                oco_guardian=settings.oco_guardian,
                naked_policy=settings.naked_policy,
                unprotected_alert_ms=settings.unprotected_alert_ms,
                books=books,
                position_poll_ms=settings.protection_position_poll_ms,
            )
            if settings.protection
            else None
        )
        router = OrderRouter(
            fills=fills,
            orders=orders,
            redis=redis,
            exchange=guarded,
            instruments=instruments,
            clock=clock,
            metrics=metrics,
            route_table=route_table,
            limits=policy_limits(settings),
            breaker=breaker,
            skew=skew,
            ops=ops,
            manager=manager,
            leases=leases,
            publisher=publisher,
            quality=quality,
            owner=f"s4:{owner}",
            lock_wait_ms=settings.lock_wait_ms,
            sync_wait_ms=settings.order_sync_wait_ms,
            margin=MarginSetup(
                exchange=guarded, ops=ops, default_leverage=settings.leverage_default
            ),
            protection=protection,
            pretrade=PretradeLimits(
                max_order_notional_usdt=settings.max_order_notional_usdt,
                price_collar_bps=settings.price_collar_bps,
                min_stop_distance_bps=settings.min_stop_distance_bps,
                intent_max_age_ms=settings.intent_max_age_ms,
                intent_max_future_ms=settings.intent_max_future_ms,
            ),
            books=books,
        )
        watch = VenueWatch(
            exchange=guarded,
            clock=clock,
            skew=skew,
            metrics=metrics,
            publisher=publisher,
            interval_ms=settings.clock_check_ms,
        )
        guarded.on_transition = watch.on_breaker
        consumer = IntentConsumer(
            redis=redis,
            router=router,
            clock=clock,
            group=settings.consumer_group,
            consumer=owner,
            claim_idle_ms=settings.stream_claim_idle_ms,
            max_deliveries=settings.stream_max_deliveries,
            stream=keys.ORDERS_INTENT,
            block_ms=settings.stream_block_ms,
            metrics=metrics,
            concurrency=settings.stream_concurrency,
        )
        subscribe = getattr(exchange, "subscribe_order_updates", None)
        unsubscribe = None
        if callable(subscribe):

            def on_update(client_order_id: str) -> None:
                manager.on_order_update(client_order_id)
                if protection is not None:
                    protection.on_order_update(client_order_id)

            # Cached: runs once however often it is called (a test may cut the feed first).
            unsubscribe = functools.cache(subscribe(on_update))
            stack.callback(unsubscribe)
        reconciler = Reconciler(
            store=store,
            orders=orders,
            exchange=guarded,
            ops=ops,
            clock=clock,
            metrics=metrics,
            publisher=publisher,
            instruments=instruments,
            router=router,
            protection=protection,
            interval_ms=settings.reconcile_interval_ms,
            window_ms=settings.reconcile_window_ms,
            cancel_orphans=settings.reconcile_cancel_orphans,
            settle_ms=max(2_000, 4 * settings.poll_interval_ms),
            fills=fills,
        )

        config_watch = RouteTableWatcher(settings=settings, router=router, publisher=publisher)
        log.info("s4 ready", extra={"venue": exchange.venue, "route_table_rev": route_table.rev})
        return S4Container(
            settings=settings,
            redis=redis,
            store=store,
            exchange=exchange,
            router=router,
            consumer=consumer,
            metrics=metrics,
            manager=manager,
            watch=watch,
            config_watch=config_watch,
            protection=protection,
            reconciler=reconciler,
            background=background,
            unsubscribe=unsubscribe,
            resources=stack.pop_all(),
        )
