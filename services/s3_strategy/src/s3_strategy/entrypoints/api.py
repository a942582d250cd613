"""S3 HTTP API: /health, /decide, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Response

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.deps import ContainerDep, ServiceDep
from s3_strategy.entrypoints.schemas import DecideRequest, DecideResponse, Health
from s3_strategy.service_layer.decide import UnknownSymbol
from svckit.httperrors import install_error_handlers
from svckit.metrics import render
from svckit.redisio import LockNotAcquired, ping
from tradekit.enums import Market


def create_app(settings: Settings, *, container: S3Container | None = None) -> FastAPI:
    """Build the app; the lifespan runs bootstrap() unless a container is injected (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = container or await bootstrap(settings)
        app.state.container = c
        try:
            yield
        finally:
            await c.aclose()

    app = FastAPI(title="S3 strategy engine", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app, fail_body=False)

    @app.get("/health", response_model=Health)
    async def health(c: ContainerDep, response: Response) -> Health:
        """Dependencies (Redis, store), config revision, rules loaded, ML model version."""
        redis_ok = await ping(c.redis)
        store_ok = await c.store.ping()
        rules = await c.store.count("strategy_rules", {"status": "ENABLED"}) if store_ok else 0
        ok = redis_ok and store_ok
        if not ok:
            response.status_code = 503
        return Health(
            status="ok" if ok else "degraded",
            redis=redis_ok,
            store={"ok": store_ok, "kind": c.store.name},
            config_rev=c.service.bundle.rev,
            rules_loaded=rules,
            ml_model_version=None,
            symbols=list(c.settings.symbols),
        )

    @app.post("/decide", response_model=DecideResponse, response_model_exclude_none=True)
    async def post_decide(body: DecideRequest, service: ServiceDep) -> Any:
        """Run the decision pipeline for one symbol; emits the intent unless dry_run."""
        try:
            return await service.decide(
                symbol=body.symbol,
                market=body.context.market if body.context else Market.FUT,
                side_hint=body.sideHint,
                dry_run=body.dry_run,
                context=body.context.model_dump() if body.context else None,
            )
        except UnknownSymbol as exc:
            raise HTTPException(422, f"symbol: unknown symbol {exc.args[0]!r}") from None
        except LockNotAcquired as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/metrics")
    async def metrics(c: ContainerDep) -> Response:
        """Prometheus metrics."""
        body, ctype = render(c.metrics.registry)
        return Response(body, media_type=ctype)

    return app
