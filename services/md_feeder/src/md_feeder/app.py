"""The feeder's composition root and its small HTTP face: /health and /metrics.

The feed runs as a task of the app's lifespan (started after Redis is reachable, stopped before
the Redis client closes), so the process is one uvicorn server like S3's and S4's and
`svckit.runner` serves all three the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from md_feeder.config import Settings
from md_feeder.metrics import FeedMetrics
from md_feeder.polling import CcxtBookSource, PollingFeed
from md_feeder.sim_stream import SimStreamFeed
from svckit.liveness import install_livez
from svckit.metrics import render
from svckit.redisio import RedisClient, make_redis, ping


@dataclass
class Feeder:
    settings: Settings
    redis: RedisClient
    metrics: FeedMetrics
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None

    def health(self) -> dict[str, Any]:
        last = self.metrics.last_publish_s
        age_ms = None if last is None else int((time.time() - last) * 1000)
        return {
            "source": self.settings.source,
            "symbols": list(self.settings.symbols),
            "last_publish_age_ms": age_ms,
            "stale": age_ms is None or age_ms > self.settings.stale_after_ms,
        }


async def start_feeder(
    stack: AsyncExitStack, settings: Settings, *, redis: RedisClient | None = None
) -> Feeder:
    """Build and start the feed; `stack` stops it (then closes what was opened here)."""
    if redis is None:
        redis = make_redis(settings.redis_addresses, password=settings.redis_password_value)
        stack.push_async_callback(redis.aclose)
    metrics = FeedMetrics()
    feed: SimStreamFeed | PollingFeed
    if settings.source == "sim":
        feed = SimStreamFeed(
            redis=redis,
            symbols=settings.symbols,
            ttl_s=settings.ttl_s,
            block_ms=settings.sim_block_ms,
            warmup=settings.sim_warmup,
            metrics=metrics,
        )
    else:
        source = CcxtBookSource(
            settings.source,
            testnet=settings.testnet,
            base_url=settings.exchange_base_url,
            timeout_ms=settings.request_timeout_ms,
        )
        stack.push_async_callback(source.close)
        feed = PollingFeed(
            source=source,
            redis=redis,
            symbols=settings.symbols,
            period_ms=settings.poll_ms,
            funding_period_ms=settings.funding_poll_ms,
            ttl_s=settings.ttl_s,
            metrics=metrics,
        )
    feeder = Feeder(settings, redis, metrics, asyncio.Event())
    feeder.task = asyncio.create_task(feed.run(feeder.stop), name="market-feed")

    async def _stop() -> None:
        feeder.stop.set()
        assert feeder.task is not None
        # A read blocked in XREAD (or a poll in flight) ends within its own bound; past that
        # the task is cancelled: nothing it holds needs a clean finish.
        bound_ms = (
            settings.sim_block_ms if settings.source == "sim" else settings.request_timeout_ms
        )
        grace_s = bound_ms / 1000 + 1
        done, _ = await asyncio.wait({feeder.task}, timeout=grace_s)
        if not done:
            feeder.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder.task

    stack.push_async_callback(_stop)
    return feeder


def create_app(settings: Settings, *, redis: RedisClient | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.feeder = await start_feeder(stack, settings, redis=redis)
            yield

    app = FastAPI(title="md-feeder", lifespan=lifespan)

    def feed_task(a: FastAPI) -> list[asyncio.Task[None]]:
        feeder: Feeder | None = getattr(a.state, "feeder", None)
        return [] if feeder is None or feeder.task is None else [feeder.task]

    install_livez(app, feed_task)

    @app.get("/health")
    async def health() -> JSONResponse:
        """Liveness and readiness: Redis reachable and the feed running; the last publish's age."""
        feeder: Feeder = app.state.feeder
        redis_ok = await ping(feeder.redis)
        # A feed task that ended (it should not) makes the pod worth restarting.
        running = feeder.task is not None and not feeder.task.done()
        ok = redis_ok and running
        body = {"status": "ok" if ok else "down", "redis": redis_ok, "feed_running": running}
        return JSONResponse({**body, **feeder.health()}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        feeder: Feeder = app.state.feeder
        data, content_type = render(feeder.metrics.registry)
        return Response(content=data, media_type=content_type)

    return app
