"""S4 HTTP API: /health, /orders, /cancel, /orders/{client_order_id}, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Path, Response
from fastapi.responses import JSONResponse

from s4_router.bootstrap import S4Container, bootstrap
from s4_router.config import Settings
from s4_router.entrypoints.deps import ContainerDep, RouterDep
from s4_router.entrypoints.schemas import CancelRequest, Health, OrderReply, OrderRequest, OrderView
from svckit.httperrors import install_error_handlers
from svckit.metrics import render
from tradekit.ids import CLIENT_ORDER_ID_PATTERN


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

    app = FastAPI(title="S4 order router", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app, fail_body=True)

    @app.get("/health", response_model=Health)
    async def health(c: ContainerDep, response: Response) -> Health:
        """Dependencies (exchange, Redis, store), route-table revision, circuit-breaker state."""
        h = await c.health()
        if h.status != "ok":
            response.status_code = 503
        return h

    @app.post(
        "/orders",
        response_model=OrderReply,
        response_model_exclude_none=True,
        responses={
            202: {"model": OrderReply, "description": "accepted, execution still running"},
            422: {"model": OrderReply, "description": "invalid intent, nothing sent"},
            503: {"model": OrderReply, "description": "breaker open / clock skew / venue down"},
        },
    )
    async def post_orders(body: OrderRequest, router: RouterDep, response: Response) -> OrderReply:
        """Execute one order intent (spec §D1 body); 200 when finished, 202 while running."""
        outcome = await router.submit(body, source="rest")
        response.status_code = outcome.http_status
        return outcome.response

    @app.post("/cancel", response_model=OrderReply, response_model_exclude_none=True)
    async def post_cancel(body: CancelRequest, router: RouterDep, response: Response) -> OrderReply:
        """Cancel an execution (by parent/child client_order_id or venue order_id)."""
        outcome = await router.cancel(client_order_id=body.client_order_id, order_id=body.order_id)
        response.status_code = outcome.http_status
        return outcome.response

    @app.get("/orders/{client_order_id}", response_model=OrderView)
    async def get_order(
        router: RouterDep,
        client_order_id: str = Path(pattern=CLIENT_ORDER_ID_PATTERN),
    ) -> Any:
        """The order with its child orders, fills and state history."""
        view = await router.get(client_order_id)
        if view is None:
            return JSONResponse(
                {"result": "FAIL", "order_ids": [], "message": f"unknown order {client_order_id}"},
                status_code=404,
            )
        return view

    if settings.exchange == "sim":
        from s4_router.entrypoints import sim

        app.include_router(sim.router)

    @app.get("/metrics")
    async def metrics(c: ContainerDep) -> Response:
        """Prometheus metrics."""
        body, ctype = render(c.metrics.registry)
        return Response(body, media_type=ctype)

    return app
