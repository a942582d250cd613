"""S4 HTTP API: /health, /orders, /cancel, /orders/{client_order_id}, /metrics.

`POST /orders` and `/cancel` answer within `S4_REQUEST_TIMEOUT_MS` (2 s by default) whatever
Redis, the store or the venue do: past the deadline the answer is 503 and the work goes on in
the background (an intake is safe to finish or to retry; a cancel that was already recorded is
answered 202, since it will be carried out).

Every request passes the bearer-token middleware (svckit.auth) before any route: S4_API_TOKEN
for everything but `GET /health` and `GET /metrics` (probes, scraping); /docs and /openapi.json
too. A refused request gets 401 and has no effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Path, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from s4_router.bootstrap import S4Container, bootstrap
from s4_router.config import Settings
from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.entrypoints.deps import ContainerDep
from s4_router.entrypoints.schemas import CancelRequest, Health, OrderView
from s4_router.entrypoints.statuses import http_status
from s4_router.service_layer.cancels import CancelProgress, cancel_recorded
from svckit.auth import API, install_bearer_auth
from svckit.httperrors import error_body, install_error_handlers
from svckit.liveness import install_livez
from svckit.logging import log_scope
from svckit.metrics import render
from tradekit.ids import CLIENT_ORDER_ID_PATTERN
from tradekit.intents import OrderIntent
from tradekit.orders import OrderResponse

log = logging.getLogger(__name__)
# Work past its request's deadline, kept referenced until it ends (its errors are logged).
_background: set[asyncio.Task[Outcome]] = set()


async def within_deadline(
    work: Awaitable[Outcome], *, timeout_s: float, on_timeout: Outcome
) -> Outcome:
    """`work`'s outcome, or `on_timeout` once `timeout_s` has passed (the work is not
    cancelled: it finishes in the background)."""
    task: asyncio.Task[Outcome] = asyncio.ensure_future(work)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout=timeout_s)
    except TimeoutError:
        _background.add(task)
        task.add_done_callback(_finished)
        return on_timeout


def _finished(task: asyncio.Task[Outcome]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("request finished in the background with an error: %r", task.exception())


def create_app(settings: Settings, *, container: S4Container | None = None) -> FastAPI:
    """Build the app; the lifespan runs bootstrap() unless a container is injected (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = container or await bootstrap(settings)
        app.state.container = c
        await c.start_background()
        try:
            yield
        finally:
            await c.aclose()

    # Bodies over S4_MAX_BODY_BYTES answer 413 before any route or parser runs (FastAPI's own
    # limiter: a declared Content-Length is refused unread, a chunked body while it streams).
    app = FastAPI(
        title="S4 order router",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    install_error_handlers(app, fail_body=True)
    install_bearer_auth(
        app,
        tokens={API: settings.api_token},
        fail_body=True,
        realm="s4-router",
        disabled=settings.auth_disabled,
    )

    install_livez(app, lambda a: getattr(getattr(a.state, "container", None), "tasks", ()))

    @app.get("/health", response_model=Health)
    async def health(c: ContainerDep, response: Response) -> Health:
        """Dependencies (exchange, Redis, store), route-table revision, circuit-breaker state."""
        h = await c.health()
        if h.status != "ok":
            response.status_code = 503
        return h

    @app.post(
        "/orders",
        response_model=OrderResponse,
        response_model_exclude_none=True,
        responses={
            202: {"model": OrderResponse, "description": "accepted, execution still running"},
            404: {"model": OrderResponse, "description": "unknown order"},
            409: {"model": OrderResponse, "description": "conflicts with an earlier request"},
            422: {"model": OrderResponse, "description": "invalid intent, nothing sent"},
            503: {"model": OrderResponse, "description": "breaker open / clock skew / venue down"},
        },
    )
    async def post_orders(body: OrderIntent, c: ContainerDep, response: Response) -> OrderResponse:
        """Execute one order intent (spec §D1 body); 200 when finished, 202 while running."""
        ms = c.settings.request_timeout_ms
        late = Outcome.of(
            Disposition.UNAVAILABLE,
            body.client_order_id,
            order_ids=[],
            message=f"service unavailable: not answered within {ms} ms (Redis, store or "
            "venue slow); the intake goes on in the background: "
            "GET /orders/{client_order_id} or resend the same body",
        )
        # Correlation for the logs of this intake and of the execution task it starts.
        with log_scope(
            signal_id=body.signal_id, intent_id=body.intent_id, client_order_id=body.client_order_id
        ):
            outcome = await within_deadline(
                c.router.submit(body, source="rest"), timeout_s=ms / 1000, on_timeout=late
            )
        if outcome is late:
            c.metrics.request_timeouts.labels("orders").inc()
        response.status_code = http_status(outcome)
        return outcome.response

    @app.post(
        "/cancel",
        response_model=OrderResponse,
        response_model_exclude_none=True,
        # Every status statuses.http_status can give, and _fail's 404/409: all in one shape.
        responses={
            202: {"model": OrderResponse, "description": "cancel recorded, still completing"},
            404: {"model": OrderResponse, "description": "unknown order"},
            409: {"model": OrderResponse, "description": "ambiguous venue order id / conflict"},
            422: {"model": OrderResponse, "description": "invalid request"},
            503: {"model": OrderResponse, "description": "Redis, store or venue unavailable"},
        },
    )
    async def post_cancel(body: CancelRequest, c: ContainerDep, response: Response) -> Any:
        """Cancel an execution (by parent/child client_order_id or venue order_id)."""
        ms = c.settings.request_timeout_ms
        progress = CancelProgress()

        # The venue-id lookup is inside the deadline too: a stalled store answers 503.
        late = Outcome.of(
            Disposition.UNAVAILABLE,
            None,
            message=f"service unavailable: cancel not recorded within {ms} ms (Redis or store "
            "slow): retry",
        )
        cancel = c.router.cancels.cancel(
            client_order_id=body.client_order_id, order_id=body.order_id, progress=progress
        )
        outcome = await within_deadline(cancel, timeout_s=ms / 1000, on_timeout=late)
        if outcome is late:
            c.metrics.request_timeouts.labels("cancel").inc()
            if progress.recorded and progress.client_order_id is not None:
                outcome = cancel_recorded(
                    progress.client_order_id,
                    f"cancel recorded; not completed within {ms} ms, it completes in the "
                    "background",
                )
        response.status_code = http_status(outcome)
        return outcome.response

    @app.get(
        "/orders/{client_order_id}",
        response_model=OrderView,
        responses={404: {"model": OrderResponse, "description": "unknown order"}},
    )
    async def get_order(
        c: ContainerDep,
        client_order_id: str = Path(pattern=CLIENT_ORDER_ID_PATTERN),
    ) -> Any:
        """The order with its child orders, fills and state history."""
        view = await c.router.get(client_order_id)
        if view is None:
            body = error_body(f"unknown order {client_order_id}", fail_body=True)
            return JSONResponse(body, status_code=404)
        return view

    if settings.exchange == "sim":
        from s4_router.entrypoints import sim

        app.include_router(sim.router)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(c: ContainerDep) -> Response:
        """Prometheus metrics."""
        body, ctype = render(c.metrics.registry)
        return Response(body, media_type=ctype)

    return app
