"""S3 HTTP API: /health, /decide, /decide/batch, /decide/replay/{signal_id}, /metrics.

Every request passes the bearer-token middleware (svckit.auth) before any route: S3_API_TOKEN
(or S3_ADMIN_TOKEN) for everything but `GET /health` and `GET /metrics`; /docs and
/openapi.json too (they map the trading API). Admin endpoints add `AdminDep` (S3_ADMIN_TOKEN).
One HTTP path per endpoint: `POST /decide` is a normal FastAPI route.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.admin import router as admin_router
from s3_strategy.entrypoints.deps import ContainerDep
from s3_strategy.entrypoints.schemas import (
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecideResponse,
    Health,
    ReplayResponse,
)
from s3_strategy.entrypoints.statuses import batch_item
from s3_strategy.entrypoints.tasks import router as tasks_router
from s3_strategy.service_layer.decide import (
    DecideRefused,
    DecisionService,
    UnknownSymbol,
)
from s3_strategy.service_layer.replay import ReplayUnavailable, SignalNotFound
from svckit.auth import ADMIN, API, install_bearer_auth
from svckit.errors import ConfigError, StartupError
from svckit.httperrors import install_error_handlers
from svckit.liveness import install_livez
from svckit.logging import log_scope
from svckit.metrics import render
from svckit.redisio import ping
from svckit.store import KEY_RE

log = logging.getLogger(__name__)
# A signal id is a document key of the store (ArangoDB's key alphabet): anything else cannot
# name a stored signal, so it is refused as input (422 naming `signal_id`) before the store.
SIGNAL_ID_PATTERN = KEY_RE.pattern


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class _RefusedStartFilter(logging.Filter):
    """A refused start (StartupError / ConfigError: a bundle failing lint with nothing good to
    keep, a bad variable) is logged by the lifespan as one critical line naming the cause;
    uvicorn would log Starlette's formatted traceback of it besides, which reads as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Traceback") and _REFUSED_MARKS.search(msg) is not None)


_REFUSED_MARKS = re.compile(r"^svckit\.errors\.(StartupError|ConfigError): ", re.MULTILINE)
_REFUSED_FILTER = _RefusedStartFilter()


def create_app(settings: Settings, *, container: S3Container | None = None) -> FastAPI:
    """Build the app; the lifespan runs bootstrap() unless a container is injected (tests)."""
    logging.getLogger("uvicorn.error").addFilter(_REFUSED_FILTER)  # a set: added once

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            c = container or await bootstrap(settings)
        except (StartupError, ConfigError) as exc:
            log.critical("s3-strategy cannot start: %s", exc)
            raise
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

    app = FastAPI(title="S3 strategy engine", version="0.2.0", lifespan=lifespan)
    install_error_handlers(app, fail_body=False)
    install_bearer_auth(
        app,
        tokens={API: settings.api_token, ADMIN: settings.admin_token},
        fail_body=False,
        realm="s3-strategy",
        # /tasks/* take a scheduler's OIDC ID token or S3_ADMIN_TOKEN: their router's
        # dependency (entrypoints/tasks.py) authenticates every request under it.
        self_auth_prefixes=("/tasks/",),
        disabled=settings.auth_disabled,
    )
    app.include_router(admin_router)

    install_livez(
        app, lambda a: getattr(getattr(a.state, "container", None), "background_tasks", ())
    )

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
            config=asdict(c.watcher.status),
        )

    @app.post("/decide", response_model=DecideResponse)
    async def post_decide(body: DecideRequest, request: Request) -> Response:
        """Run the decision pipeline for one symbol; emits the intent unless dry_run."""
        # The hottest route reads the service off app.state itself rather than through
        # ContainerDep: a resolved dependency costs ≈ 25 µs of CPU per request here (≈ 10 % of
        # the route's framework cost, measured driving the ASGI app directly); the route still
        # passes every middleware (auth first) and FastAPI's body validation.
        service: DecisionService = request.app.state.container.service
        try:
            # The decision binds signal_id (and the intent's ids) for its logs, in this scope.
            with log_scope():
                return _json(await service.decide(body.as_input()))
        except UnknownSymbol as exc:
            return _json({"detail": f"symbol: unknown symbol {exc.args[0]!r}"}, 422)
        except DecideRefused as exc:
            return _json({"detail": str(exc)}, 422)

    @app.post("/decide/batch", response_model=DecideBatchResponse)
    async def post_decide_batch(body: DecideBatchRequest, c: ContainerDep) -> Response:
        """Decide for many symbols in one call; answers in request order."""
        reqs = body.requests()
        if len(reqs) > c.settings.batch_max:
            raise HTTPException(422, f"items: at most {c.settings.batch_max} per batch")
        results = [
            batch_item(r) for r in await c.service.decide_batch([r.as_input() for r in reqs])
        ]
        return _json({"count": len(results), "results": results})

    @app.post(
        "/decide/replay/{signal_id}",
        response_model=ReplayResponse,
        responses={
            404: {"description": "unknown signal"},
            409: {"description": "an input of the decision is gone (`missing`)"},
        },
    )
    async def post_replay(
        signal_id: Annotated[str, Path(pattern=SIGNAL_ID_PATTERN)], c: ContainerDep
    ) -> Response:
        """Re-run a stored decision from its recorded inputs and config; writes nothing."""
        try:
            return _json(await c.service.replay(signal_id))
        except SignalNotFound:
            raise HTTPException(404, f"signal {signal_id!r} not found") from None
        except ReplayUnavailable as exc:
            return JSONResponse(
                {"detail": str(exc), "signal_id": signal_id, "missing": exc.missing},
                status_code=409,
            )

    app.include_router(tasks_router)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(c: ContainerDep) -> Response:
        """Prometheus metrics."""
        body, ctype = render(c.metrics.registry)
        return Response(body, media_type=ctype)

    return app
