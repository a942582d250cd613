"""Uniform HTTP error bodies for both services.

* bad input ⇒ 422 with a message naming the field (`body.qty: Input should be greater than 0`);
* infrastructure down (Redis, store) ⇒ 503 with the reason; the request had no effect or is
  recoverable (nothing is acknowledged before it is persisted);
* never a bare 500 for a known condition.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_exc

from svckit.errors import InfraError

log = logging.getLogger(__name__)


def describe_validation(errors: Any) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "function-after[_shape()]")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI, *, fail_body: bool) -> None:
    """fail_body: S4 answers in its `{result: FAIL, order_ids, message}` shape."""

    def body(message: str) -> dict[str, Any]:
        if fail_body:
            return {"result": "FAIL", "order_ids": [], "message": message}
        return {"detail": message}

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(body(describe_validation(exc.errors())), status_code=422)

    @app.exception_handler(InfraError)
    async def _infra(_: Request, exc: InfraError) -> JSONResponse:
        log.warning("request failed on infrastructure: %s", exc)
        return JSONResponse(body(f"service unavailable: {exc}"), status_code=503)

    @app.exception_handler(redis_exc.RedisError)
    async def _redis(_: Request, exc: redis_exc.RedisError) -> JSONResponse:
        log.warning("request failed on redis: %s", exc)
        return JSONResponse(body(f"service unavailable: redis: {exc}"), status_code=503)
