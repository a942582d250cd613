"""Composition root of S3: builds every dependency from Settings (nothing connects at import).

Dependencies are keyword-only so tests pass real Redis/store instances (or fakes subclassing the
ports, e.g. a slow Scorer) explicitly. Background work (the entries-ledger reconciler) starts in
`S3Container.start()`, called by the FastAPI lifespan, and stops in `aclose()`.

Closing: everything `bootstrap()` opens itself (Redis, the store, the HTTP client to S4, the
exchange reader, the signal writer) is registered on one `AsyncExitStack` the moment it is
opened, so it is closed in reverse order by `aclose()`, and by `bootstrap()` itself when start-up
fails half-way; what a caller passed in stays the caller's to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

from s3_strategy.adapters.alerts import AlertSink
from s3_strategy.adapters.configstore import ConfigLoadError, ConfigStore
from s3_strategy.adapters.entries import EntriesLedger
from s3_strategy.adapters.intent_publisher import IntentPublisher
from s3_strategy.adapters.spot_reader import CcxtSpotReader, SpotReader
from s3_strategy.adapters.state import StateReader
from s3_strategy.config import Settings
from s3_strategy.domain.ml import ConstantScorer, Scorer
from s3_strategy.metrics import StrategyMetrics
from s3_strategy.service_layer.config_admin import ConfigAdmin
from s3_strategy.service_layer.config_watch import ConfigWatcher
from s3_strategy.service_layer.decide import DecisionService
from s3_strategy.service_layer.rebalance_tasks import TaskService
from svckit import keys
from svckit.clock import Clock, WallClock
from svckit.errors import ConfigError, StartupError
from svckit.infra import open_infra
from svckit.oidc import OidcVerifier
from svckit.redisio import RedisClient
from svckit.store.base import DocumentStore

log = logging.getLogger(__name__)


@dataclass
class S3Container:
    settings: Settings
    redis: RedisClient
    store: DocumentStore
    http: httpx.AsyncClient | None
    service: DecisionService
    metrics: StrategyMetrics
    ledger: EntriesLedger
    configs: ConfigStore
    admin: ConfigAdmin
    watcher: ConfigWatcher
    tasks: TaskService
    oidc: OidcVerifier | None = None
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    # The loops start() runs (ledger reconciler, config watcher): /livez reports the ended ones.
    background_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        if not self.background_tasks:
            self._stop.clear()
            # Last in, first out: the loops stop before what they use is closed.
            self.resources.push_async_callback(self._stop_tasks)
            self.background_tasks.append(
                asyncio.create_task(
                    self.ledger.run(self._stop, poll_ms=self.settings.entries_poll_ms),
                    name="s3-ledger",
                )
            )
            self.background_tasks.append(
                asyncio.create_task(self.watcher.run(self._stop), name="s3-config-watch")
            )

    async def aclose(self) -> None:
        await self.resources.aclose()

    async def _stop_tasks(self) -> None:
        self._stop.set()
        for task in self.background_tasks:
            # The loops wake on the event; cancel only a task stuck in I/O for too long.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.background_tasks.clear()


async def bootstrap(
    settings: Settings,
    *,
    redis: RedisClient | None = None,
    store: DocumentStore | None = None,
    http: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
    scorer: Scorer | None = None,
    seed: bool = True,
    spot_reader: SpotReader | None = None,
) -> S3Container:
    # Each resource is registered as it is opened; the container takes them over only once
    # start-up has succeeded (a failure half-way closes them here, in reverse order).
    async with AsyncExitStack() as stack:
        clock = clock or WallClock()
        infra = await open_infra(stack, settings, prefix="S3_", redis=redis, store=store, seed=seed)
        redis, store = infra.redis, infra.store
        configs = ConfigStore(store)
        try:
            engine, warnings = await configs.load_active(settings)
        except ConfigLoadError as exc:
            raise StartupError(str(exc)) from exc
        unknown = [s for s in settings.symbols if s not in engine.plans]
        if unknown:
            raise ConfigError(
                f"S3_SYMBOLS names symbols missing from instrument_registry: {unknown}"
            )
        await configs.save_context(engine, clock.now_ms())
        await configs.ensure_revisioned(engine, clock.now_ms())
        # Announce the store's record when nobody has. A different value is not alerted here: the
        # config watcher alerts CONFIG_REV_MISMATCH if it persists beyond two poll periods.
        await redis.set(keys.CFG_ACTIVE_REV, engine.config_rev, nx=True)
        if http is None and settings.s4_url:
            token = settings.s4_api_token
            http = httpx.AsyncClient(
                base_url=settings.s4_url,
                timeout=settings.s4_timeout_ms / 1000,
                limits=httpx.Limits(max_keepalive_connections=32),
                # S4's bearer token (absent only with S3_AUTH_DISABLED, i.e. a dev stack).
                headers={"Authorization": f"Bearer {token.get_secret_value()}"} if token else None,
            )
            stack.push_async_callback(http.aclose)
        metrics = StrategyMetrics()
        publisher = IntentPublisher(redis=redis, http=http, retries=settings.publish_retries)
        alerts = AlertSink(
            redis=redis, clock=clock, metrics=metrics, min_interval_s=settings.alert_min_interval_s
        )
        ledger = EntriesLedger(
            redis=redis,
            store=store,
            clock=clock,
            symbols=sorted(engine.plans),
            grace_ms=settings.entries_grace_ms,
            reconcile_ms=settings.entries_reconcile_ms,
        )
        service = DecisionService(
            settings=settings,
            redis=redis,
            store=store,
            publisher=publisher,
            engine=engine,
            scorer=scorer or ConstantScorer(),
            state=StateReader(redis),
            ledger=ledger,
            alerts=alerts,
            configs=configs,
            clock=clock,
            metrics=metrics,
        )
        stack.push_async_callback(service.signals.aclose)
        watcher = ConfigWatcher(
            settings=settings,
            redis=redis,
            configs=configs,
            service=service,
            alerts=alerts,
            clock=clock,
            metrics=metrics,
        )
        admin = ConfigAdmin(settings=settings, redis=redis, configs=configs, clock=clock)
        for warning in warnings:
            await alerts.emit("CONFIG_REV_MISMATCH", warning, severity="critical", rate_limit=False)
        if configs.rejected is not None:
            log.critical("active bundle refused: %s", configs.rejected)
            await alerts.emit(
                "CONFIG_REJECTED", configs.rejected, severity="critical", rate_limit=False
            )
        log.info(
            "s3 ready",
            extra={
                "config_rev": engine.config_rev,
                "ctx_rev": engine.ctx_rev,
                "rules_enabled": engine.rules_enabled,
                "instruments": sorted(engine.plans),
                "store": store.name,
            },
        )
        # Scheduled tasks (issue 14): their own read-only exchange view, OIDC when configured.
        if spot_reader is None and settings.exchange != "none":
            spot_reader = CcxtSpotReader(
                settings.exchange,
                api_key=_secret(settings.exchange_api_key),
                api_secret=_secret(settings.exchange_api_secret),
                base_url=settings.exchange_base_url,
            )
            stack.push_async_callback(spot_reader.close)
        tasks = TaskService(
            settings=settings,
            redis=redis,
            store=store,
            publisher=publisher,
            reader=spot_reader,
            engine=lambda: service.engine,
            clock=clock,
            metrics=metrics,
        )
        oidc = None
        if settings.scheduler_audience:
            oidc = OidcVerifier(
                jwks_url=settings.scheduler_jwks_url,
                audience=settings.scheduler_audience,
                issuers=settings.scheduler_issuers,
                emails=settings.scheduler_emails,
                leeway_s=settings.scheduler_leeway_s,
                cooldown_s=settings.scheduler_jwks_cooldown_s,
            )
        return S3Container(
            settings,
            redis,
            store,
            http,
            service,
            metrics,
            ledger,
            configs,
            admin,
            watcher,
            tasks,
            oidc,
            stack.pop_all(),
        )


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())
