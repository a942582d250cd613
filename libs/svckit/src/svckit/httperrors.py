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


def error_body(message: str, *, fail_body: bool) -> dict[str, Any]:
    """fail_body: S4 answers in its `{result: FAIL, order_ids, message}` shape."""
    if fail_body:
        return {"result": "FAIL", "order_ids": [], "message": message}
    return {"detail": message}


# `{"detail": "..."}`: S3's error body, and both services' answer to an unparsable body.
_DETAIL_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def _validation_error_schema(*, fail_body: bool) -> dict[str, Any]:
    """The 422 body the handler below really sends (FastAPI's default declares a list)."""
    if fail_body:
        return {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {
                "result": {"type": "string", "enum": ["FAIL"]},
                "order_ids": {"type": "array", "items": {"type": "string"}},
                "message": {"type": "string"},
            },
            "required": ["result", "order_ids", "message"],
        }
    return {"title": "HTTPValidationError", **_DETAIL_BODY}


_UNPARSABLE_BODY: dict[str, Any] = {
    "description": "the body could not be parsed (not UTF-8 JSON)",
    "content": {"application/json": {"schema": _DETAIL_BODY}},
}


def _declare_validation_body(app: FastAPI, *, fail_body: bool) -> None:
    """Publish the 422 shape the handler sends in the OpenAPI, so clients generated from it (and
    the schemathesis run in tests/fuzz) read `detail`/`message` as the string it is."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # caches itself on app.openapi_schema; patched in place
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in components:
            components["HTTPValidationError"] = _validation_error_schema(fail_body=fail_body)
            components.pop("ValidationError", None)  # only the default 422 body referenced it
        # A body that is not JSON text at all (not UTF-8) is refused by FastAPI itself before
        # validation: 400 `{"detail": "There was an error parsing the body"}`, in both services.
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation.setdefault("responses", {}).setdefault("400", _UNPARSABLE_BODY)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI, *, fail_body: bool) -> None:
    """fail_body: S4 answers in its `{result: FAIL, order_ids, message}` shape."""
    _declare_validation_body(app, fail_body=fail_body)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "function-after[_shape()]")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        message = "; ".join(parts) or "invalid request"
        return JSONResponse(error_body(message, fail_body=fail_body), status_code=422)

    async def _infra(_: Request, exc: Exception) -> JSONResponse:
        """An infrastructure failure: 503 with the reason."""
        infra = isinstance(exc, InfraError)  # else redis-py's RedisError (registered below)
        log.warning("request failed on %s: %s", "infrastructure" if infra else "redis", exc)
        reason = exc if infra else f"redis: {exc}"
        return JSONResponse(error_body(f"service unavailable: {reason}", fail_body=fail_body), 503)

    app.add_exception_handler(InfraError, _infra)
    app.add_exception_handler(redis_exc.RedisError, _infra)
