"""S3 HTTP API: /health, /decide, /decide/batch, /decide/replay/{signal_id}, /metrics.

`POST /decide` is also a hot route (svckit.fastpath): a valid JSON body is decided without
FastAPI's per-request machinery, through the same `_decide` as the FastAPI route, which stays
the documented one and answers every request the hot path declines (invalid bodies ⇒ the usual
422, other content types, oversize bodies).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.deps import ContainerDep, ServiceDep
from s3_strategy.entrypoints.schemas import (
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecideResponse,
    Health,
    ReplayResponse,
)
from s3_strategy.entrypoints.tasks import router as tasks_router
from s3_strategy.service_layer.decide import (
    DecideInput,
    DecisionService,
    ReplayUnavailable,
    SignalNotFound,
    UnknownSymbol,
)
from svckit.fastpath import FastPathApp
from svckit.httperrors import install_error_handlers
from svckit.metrics import render
from svckit.redisio import ping
from tradekit.enums import Market


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _decide(service: DecisionService, body: DecideRequest) -> tuple[int, bytes]:
    """POST /decide for both paths: (status, JSON body)."""
    ctx = body.context
    try:
        result = await service.decide(
            symbol=body.symbol,
            market=ctx.market if ctx else Market.FUT,
            side_hint=body.sideHint,
            dry_run=body.dry_run,
            features=ctx.features if ctx else None,
        )
    except UnknownSymbol as exc:
        return 422, orjson.dumps({"detail": f"symbol: unknown symbol {exc.args[0]!r}"})
    return 200, orjson.dumps(result)


def create_app(settings: Settings, *, container: S3Container | None = None) -> FastAPI:
    """Build the app; the lifespan runs bootstrap() unless a container is injected (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = container or await bootstrap(settings)
        app.state.container = c
        await c.start()
        if container is None:
            # Everything built so far lives as long as the process: move it out of the
            # collector's way, so full collections stay short under load (p99).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await c.aclose()

    app = FastPathApp(title="S3 strategy engine", version="0.2.0", lifespan=lifespan)
    install_error_handlers(app, fail_body=False)

    @app.get("/health", response_model=Health)
    async def health(c: ContainerDep, response: Response) -> Health:
        """Dependencies (Redis, store), config revision, rules loaded, ML model version."""
        redis_ok = await ping(c.redis)
        store_ok = await c.store.ping()
        entries: int | None = None
        if redis_ok:
            try:
                entries = len(await c.ledger.snapshot())
            except Exception:
                redis_ok = False
        ok = redis_ok and store_ok
        if not ok:
            response.status_code = 503
        engine = c.service.engine
        return Health(
            status="ok" if ok else "degraded",
            redis=redis_ok,
            store={"ok": store_ok, "kind": c.store.name},
            config_rev=engine.config_rev,
            ctx_rev=engine.ctx_rev,
            bundle_id=engine.bundle_id,
            rules_loaded=engine.rules_enabled,
            ml_model_version=c.service.scorer.model_version,
            entries_in_flight=entries,
            symbols=list(c.settings.symbols),
        )

    @app.post("/decide", response_model=DecideResponse)
    async def post_decide(body: DecideRequest, service: ServiceDep) -> Response:
        """Run the decision pipeline for one symbol; emits the intent unless dry_run."""
        status, payload = await _decide(service, body)
        return Response(payload, status_code=status, media_type="application/json")

    async def hot_decide(raw: bytes) -> tuple[int, bytes] | None:
        c: S3Container | None = getattr(app.state, "container", None)
        if c is None:
            return None
        try:
            body = DecideRequest.model_validate_json(raw)
        except ValidationError:
            return None  # the FastAPI route answers 422 with its usual message
        return await _decide(c.service, body)

    app.hot_route("POST", "/decide", hot_decide)

    @app.post("/decide/batch", response_model=DecideBatchResponse)
    async def post_decide_batch(
        body: DecideBatchRequest, service: ServiceDep, c: ContainerDep
    ) -> Response:
        """Decide for many symbols in one call; answers in request order."""
        reqs = body.requests()
        if len(reqs) > c.settings.batch_max:
            raise HTTPException(422, f"items: at most {c.settings.batch_max} per batch")
        items = [
            DecideInput(
                symbol=r.symbol,
                market=r.context.market if r.context else Market.FUT,
                side_hint=r.sideHint,
                dry_run=r.dry_run,
                features=r.context.features if r.context else None,
            )
            for r in reqs
        ]
        results = await service.decide_batch(items)
        return _json({"count": len(results), "results": results})

    @app.post(
        "/decide/replay/{signal_id}",
        response_model=ReplayResponse,
        responses={404: {"description": "unknown signal"},
                   409: {"description": "an input of the decision is gone (`missing`)"}},
    )  # fmt: skip
    async def post_replay(signal_id: str, service: ServiceDep) -> Response:
        """Re-run a stored decision from its recorded inputs and config; writes nothing."""
        try:
            return _json(await service.replay(signal_id))
        except SignalNotFound:
            raise HTTPException(404, f"signal {signal_id!r} not found") from None
        except ReplayUnavailable as exc:
            return JSONResponse(
                {"detail": str(exc), "signal_id": signal_id, "missing": exc.missing},
                status_code=409,
            )

    app.include_router(tasks_router)

    @app.get("/metrics")
    async def metrics(c: ContainerDep) -> Response:
        """Prometheus metrics."""
        body, ctype = render(c.metrics.registry)
        return Response(body, media_type=ctype)

    return app
