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


def error_body(message: str, *, fail_body: bool) -> dict[str, Any]:
    """fail_body: S4 answers in its `{result: FAIL, order_ids, message}` shape."""
    if fail_body:
        return {"result": "FAIL", "order_ids": [], "message": message}
    return {"detail": message}


def infra_error(exc: BaseException, *, fail_body: bool) -> tuple[int, dict[str, Any]] | None:
    """The answer for an infrastructure failure (503 with the reason), None for anything else."""
    if isinstance(exc, InfraError):
        log.warning("request failed on infrastructure: %s", exc)
        return 503, error_body(f"service unavailable: {exc}", fail_body=fail_body)
    if isinstance(exc, redis_exc.RedisError):
        log.warning("request failed on redis: %s", exc)
        return 503, error_body(f"service unavailable: redis: {exc}", fail_body=fail_body)
    return None


def install_error_handlers(app: FastAPI, *, fail_body: bool) -> None:
    """fail_body: S4 answers in its `{result: FAIL, order_ids, message}` shape."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = describe_validation(exc.errors())
        return JSONResponse(error_body(message, fail_body=fail_body), status_code=422)

    async def _infra(_: Request, exc: Exception) -> JSONResponse:
        answer = infra_error(exc, fail_body=fail_body)
        if answer is None:  # pragma: no cover - registered for infra errors only
            raise exc
        status, body = answer
        return JSONResponse(body, status_code=status)

    app.add_exception_handler(InfraError, _infra)
    app.add_exception_handler(redis_exc.RedisError, _infra)
