"""Composition root of S4: builds every dependency from Settings (nothing connects at import).

Dependencies are keyword-only so tests pass a real Redis, a store and an exchange adapter
explicitly; background work (the `orders:intent` consumer, the simulator's market pump) starts
in `start_background()`, called by the FastAPI lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s4_router.adapters.exchange.base import ExchangePort
from s4_router.config import Settings
from s4_router.entrypoints.schemas import Health
from s4_router.entrypoints.stream_consumer import IntentConsumer
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.router import OrderRouter
from svckit import keys
from svckit.clock import Clock, WallClock
from svckit.errors import ConfigError
from svckit.redisio import RedisClient, make_redis, ping
from svckit.store import content_rev
from svckit.store.base import DocumentStore
from svckit.store.factory import make_store
from svckit.store.seed import seed_store
from tradekit.instrument import Instrument

log = logging.getLogger(__name__)

BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class StartupError(RuntimeError):
    pass


@dataclass
class S4Container:
    settings: Settings
    redis: RedisClient
    store: DocumentStore
    exchange: ExchangePort
    router: OrderRouter
    consumer: IntentConsumer
    metrics: RouterMetrics
    route_table: list[dict[str, Any]]
    route_table_rev: str
    background: list[BackgroundTask] = field(default_factory=list)
    owns: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_background(self) -> None:
        self.tasks.append(asyncio.create_task(self.consumer.run(self.stop), name="intents"))
        for job in self.background:
            self.tasks.append(asyncio.create_task(job(self.stop)))

    async def health(self) -> Health:
        redis_ok = await ping(self.redis)
        store_ok = await self.store.ping()
        try:
            server_ms = await asyncio.wait_for(self.exchange.server_time_ms(), timeout=2)
            exch = {"ok": True, "venue": self.exchange.venue, "server_time": server_ms}
        except Exception as exc:
            exch = {"ok": False, "venue": self.exchange.venue, "error": str(exc)}
        ok = redis_ok and store_ok and bool(exch["ok"])
        return Health(
            status="ok" if ok else "degraded",
            exchange=exch,
            redis=redis_ok,
            store={"ok": store_ok, "kind": self.store.name},
            route_table_rev=self.route_table_rev,
            circuit_breaker="CLOSED",
            consumer={
                "group": self.consumer.group,
                "name": self.consumer.consumer,
                "healthy": self.consumer.healthy,
                "handled": self.consumer.handled,
            },
        )

    async def aclose(self) -> None:
        self.stop.set()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks.clear()
        if "exchange" in self.owns:
            await self.exchange.close()
        if "redis" in self.owns:
            await self.redis.aclose()
        if "store" in self.owns:
            await self.store.close()


def load_route_table(path: Path) -> tuple[list[dict[str, Any]], str]:
    try:
        bands = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"S4_ROUTE_TABLE_PATH={str(path)!r}: {exc}") from None
    if not isinstance(bands, list) or not bands:
        raise ConfigError(f"S4_ROUTE_TABLE_PATH={str(path)!r}: expected a non-empty JSON list")
    return bands, content_rev(bands)


async def load_instruments(store: DocumentStore) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for doc in await store.find("instrument_registry"):
        inst = Instrument.model_validate({k: v for k, v in doc.items() if not k.startswith("_")})
        out[inst.symbol] = inst
    return out


async def bootstrap(
    settings: Settings,
    *,
    redis: RedisClient | None = None,
    store: DocumentStore | None = None,
    exchange: ExchangePort | None = None,
    clock: Clock | None = None,
    seed: bool = True,
) -> S4Container:
    owns: list[str] = []
    clock = clock or WallClock()
    route_table, route_rev = load_route_table(settings.route_table_path)
    if redis is None:
        if not settings.redis_addresses:
            raise ConfigError("S4_REDIS_ADDRESSES is empty (python -m s4_router starts one)")
        redis = make_redis(settings.redis_addresses, password=settings.redis_password)
        owns.append("redis")
    if not await ping(redis):
        raise StartupError(f"Redis unreachable at {','.join(settings.redis_addresses)}")
    if store is None:
        store = make_store(
            arango_uri=settings.db_arango_uri,
            arango_user=settings.db_arango_user,
            arango_pass=settings.db_arango_pass,
            arango_db=settings.db_arango_name,
            data_dir=settings.data_dir,
        )
        owns.append("store")
    if seed:
        await seed_store(store, settings.fixtures_dir)
    else:
        await store.bootstrap()
    instruments = await load_instruments(store)
    background: list[BackgroundTask] = []
    if exchange is None:
        from s4_router.adapters.exchange.factory import make_exchange

        exchange, background = make_exchange(
            settings, instruments=instruments, redis=redis, clock=clock
        )
        owns.append("exchange")
    await exchange.load_markets(list(instruments.values()))
    metrics = RouterMetrics()
    owner = settings.consumer_name or f"{socket.gethostname()}-{os.getpid()}"
    router = OrderRouter(
        store=store,
        redis=redis,
        exchange=exchange,
        instruments=instruments,
        clock=clock,
        metrics=metrics,
        owner=f"s4:{owner}",
    )
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
    )
    log.info("s4 ready", extra={"venue": exchange.venue, "route_table_rev": route_rev})
    return S4Container(
        settings=settings,
        redis=redis,
        store=store,
        exchange=exchange,
        router=router,
        consumer=consumer,
        metrics=metrics,
        route_table=route_table,
        route_table_rev=route_rev,
        background=background,
        owns=owns,
    )
