"""Composition root of S3: builds every dependency from Settings (nothing connects at import).

Dependencies are keyword-only so tests pass real Redis/store instances (or fakes subclassing the
ports) explicitly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from s3_strategy.adapters.publisher import IntentPublisher
from s3_strategy.config import Settings
from s3_strategy.metrics import StrategyMetrics
from s3_strategy.service_layer.decide import ConfigBundle, DecisionService
from svckit import keys
from svckit.clock import Clock, WallClock
from svckit.errors import ConfigError
from svckit.redisio import RedisClient, make_redis, ping
from svckit.store.base import DocumentStore
from svckit.store.factory import make_store
from svckit.store.seed import seed_store
from tradekit.instrument import Instrument

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    pass


@dataclass
class S3Container:
    settings: Settings
    redis: RedisClient
    store: DocumentStore
    http: httpx.AsyncClient | None
    service: DecisionService
    metrics: StrategyMetrics
    owns: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if "redis" in self.owns:
            await self.redis.aclose()
        if "store" in self.owns:
            await self.store.close()


async def load_instruments(store: DocumentStore) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    for doc in await store.find("instrument_registry"):
        body = {k: v for k, v in doc.items() if not k.startswith("_")}
        inst = Instrument.model_validate(body)
        out[inst.symbol] = inst
    return out


async def load_bundle(store: DocumentStore, service: str = "s3-strategy") -> ConfigBundle:
    active = await store.get("config_active", service)
    if active is None:
        raise StartupError(f"no config_active document for {service!r}: seed the store")
    bundle = await store.get("config_bundles", str(active["bundle_id"]))
    if bundle is None:
        raise StartupError(f"config bundle {active['bundle_id']!r} is missing")
    return ConfigBundle(
        rev=str(active["rev"]), bundle_id=str(active["bundle_id"]), params=bundle.get("params", {})
    )


async def bootstrap(
    settings: Settings,
    *,
    redis: RedisClient | None = None,
    store: DocumentStore | None = None,
    http: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
    seed: bool = True,
) -> S3Container:
    owns: list[Any] = []
    if redis is None:
        if not settings.redis_addresses:
            raise ConfigError("S3_REDIS_ADDRESSES is empty (python -m s3_strategy starts one)")
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
    unknown = [s for s in settings.symbols if s not in instruments]
    if unknown:
        raise ConfigError(f"S3_SYMBOLS names symbols missing from instrument_registry: {unknown}")
    bundle = await load_bundle(store)
    await redis.set(keys.CFG_ACTIVE_REV, bundle.rev, nx=True)
    if http is None and settings.s4_url:
        http = httpx.AsyncClient(
            base_url=settings.s4_url,
            timeout=settings.s4_timeout_ms / 1000,
            limits=httpx.Limits(max_keepalive_connections=32),
        )
    metrics = StrategyMetrics()
    publisher = IntentPublisher(redis=redis, http=http, retries=settings.publish_retries)
    service = DecisionService(
        settings=settings,
        redis=redis,
        store=store,
        publisher=publisher,
        instruments=instruments,
        bundle=bundle,
        clock=clock or WallClock(),
        metrics=metrics,
    )
    log.info(
        "s3 ready",
        extra={"config_rev": bundle.rev, "instruments": sorted(instruments), "store": store.name},
    )
    return S3Container(settings, redis, store, http, service, metrics, owns)
