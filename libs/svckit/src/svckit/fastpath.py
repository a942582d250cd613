"""A lean ASGI path for a service's hottest endpoint, in front of FastAPI's own handling.

FastAPI's per-request machinery (its middleware stack, dependency resolution, validating the
body into the route's signature, response handling) costs ≈ 80 µs of CPU per request on the
reference 2-core VM — as much as S3's whole decision with its Redis read and signal write
(measured with the raw keep-alive client of tests/bench/bench_s3_http.py, 8 connections: a
bare FastAPI endpoint ≈ 9,000 requests/s, the same endpoint as plain ASGI ≈ 33,000/s).
`FastPathApp` is a FastAPI app in every respect (routes, OpenAPI, lifespan, error handlers,
tests) in which a few (method, path) pairs are also registered as *hot routes*: plain handlers
`bytes -> (status, bytes) | None` served before FastAPI sees the request.

The contract does not change, because a hot handler only ever answers the *valid* case:

* it gets the raw body (JSON only, at most `hot_max_body` bytes; anything else — another
  content type, chunked or oversize bodies — goes to FastAPI untouched);
* it returns None to decline (e.g. the body does not validate): the request, with its body
  replayed, is then handled by the regular FastAPI route, which produces the usual 422 with
  the usual message;
* an infrastructure failure it raises is answered exactly like the installed handlers do
  (`httperrors.infra_error`: 503 and the reason, in the body shape `install_error_handlers`
  chose for the app); anything else is logged with its traceback and answered 500, like
  Starlette's ServerErrorMiddleware.

The regular FastAPI route stays the documented one (OpenAPI) and serves every declined
request, so both paths must call one shared implementation; tests run the same contract
cases through both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from svckit.httperrors import error_body, error_shape, infra_error

log = logging.getLogger(__name__)

HotHandler = Callable[[bytes], Awaitable[tuple[int, bytes] | None]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastPathApp(FastAPI):
    def __init__(self, *args: Any, hot_max_body: int = 64 * 1024, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hot: dict[tuple[str, str], HotHandler] = {}
        self.hot_max_body = hot_max_body
        self.hot_served = 0  # answered on the hot path (tests, diagnostics)
        self.hot_declined = 0  # handed to FastAPI after reading the body

    def hot_route(self, method: str, path: str, handler: HotHandler) -> None:
        """Serve `method path` with `handler` first; the FastAPI route for the same pair
        (which must exist) answers whatever the handler declines."""
        self._hot[(method.upper(), path)] = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._hot and scope["type"] == "http" and not self.root_path:
            handler = self._hot.get((scope["method"], scope["path"]))
            if handler is not None:
                await self._serve_hot(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve_hot(
        self, handler: HotHandler, scope: Scope, receive: Receive, send: Send
    ) -> None:
        length = -1
        json_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type":
                json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
        if not json_body or not 0 <= length <= self.hot_max_body:
            await super().__call__(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.hot_max_body or not message.get("more_body", False):
                break
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        answer: tuple[int, bytes] | None = None
        if size <= self.hot_max_body:
            try:
                answer = await handler(body)
            except Exception as exc:
                fail_body = error_shape(self)  # as install_error_handlers set it up
                known = infra_error(exc, fail_body=fail_body)
                if known is None:
                    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                    known = 500, error_body("internal server error", fail_body=fail_body)
                answer = known[0], orjson.dumps(known[1])
        if answer is None:
            self.hot_declined += 1
            await super().__call__(scope, _replay(body, size > self.hot_max_body, receive), send)
            return
        self.hot_served += 1
        status, payload = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """`receive` for the FastAPI path: the body already read first, then the rest."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
