"""Emits an intent on both paths: XADD `orders:intent` and POST S4 `/orders` (spec C4: both,
S4 deduplicates by client_order_id). Each path is retried with backoff; a path that still fails
is reported to the caller and raised on `alerts` — never silently dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from svckit import keys
from svckit.redisio import RedisClient, xadd_json

log = logging.getLogger(__name__)


class _Retryable(Exception):
    pass


def describe(exc: BaseException) -> str:
    """The cause, always named: an httpx timeout's str() is empty ("rest: " told nothing)."""
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException) and not text:
        try:
            request: httpx.Request | None = exc.request
        except RuntimeError:  # raised when the exception carries no request
            request = None
        timeout = (request.extensions.get("timeout") or {}) if request is not None else {}
        limits = {k: v for k, v in timeout.items() if v is not None}
        where = f" from {request.url}" if request is not None else ""
        text = f"no answer{where} within {limits or 'the timeout'}"
    return f"{name}: {text}" if text else f"{name} (no message)"


@dataclass(slots=True)
class PublishReport:
    stream: str = "skipped"  # ok | failed | skipped
    rest: str = "skipped"
    stream_id: str | None = None
    s4: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.stream == "ok" or self.rest == "ok"


@dataclass(kw_only=True, eq=False)
class IntentPublisher:
    redis: RedisClient
    http: httpx.AsyncClient | None
    retries: int
    stream: str = keys.ORDERS_INTENT

    def _retrying(self, *exc: type[BaseException]) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=0.02, max=0.5),
            retry=retry_if_exception_type(exc),
            reraise=True,
        )

    async def publish(self, intent: dict[str, Any]) -> PublishReport:
        report = PublishReport()
        try:
            async for attempt in self._retrying(Exception):
                with attempt:
                    report.stream_id = await xadd_json(self.redis, self.stream, intent)
            report.stream = "ok"
        except Exception as exc:
            report.stream = "failed"
            report.errors.append(f"stream: {describe(exc)}")
        if self.http is not None:
            try:
                async for attempt in self._retrying(_Retryable, httpx.TransportError):
                    with attempt:
                        resp = await self.http.post("/orders", json=intent)
                        if resp.status_code in (401, 403):
                            # Credentials, not an answer about the intent: no retry, and the
                            # alert says which setting to fix.
                            raise PermissionError(
                                f"S4 refused S3's token ({resp.status_code}): "
                                "check S3_S4_API_TOKEN against S4_API_TOKEN"
                            )
                        if resp.status_code >= 500 and resp.status_code != 503:
                            raise _Retryable(f"S4 answered {resp.status_code}")
                        body = resp.json()
                        report.s4 = body if isinstance(body, dict) else {"body": body}
                        # 503 with an AMBIGUOUS order is an answer (reconciliation pending).
                        if resp.status_code == 503 and "status" not in report.s4:
                            raise _Retryable(f"S4 unavailable: {report.s4.get('message')}")
                report.rest = "ok"
            except Exception as exc:
                report.rest = "failed"
                report.errors.append(f"rest: {describe(exc)}")
        return report
