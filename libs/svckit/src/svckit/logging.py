"""Structured JSON logging (one object per line) for both services.

Correlation: `signal_id`, `intent_id` and `client_order_id` are bound in a context variable where
a decision or an order is handled (S3's /decide, S4's intake and its execution tasks) and every
record logged under it carries them (CorrelationFilter, on the handler configure_logging
installs), so one order can be followed from /decide to its last fill across both services'
logs. asyncio copies the context into each task it creates: an execution task started while an
intent is handled keeps its ids; `log_scope()` at an entry point keeps them from leaking into
whatever its caller logs next.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, Any

from svckit.jsonutil import dumps

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_correlation: ContextVar[dict[str, str] | None] = ContextVar("log_correlation", default=None)


def bind_log_context(
    *,
    signal_id: str | None = None,
    intent_id: str | None = None,
    client_order_id: str | None = None,
) -> None:
    """Add ids to the current context's correlation (None leaves a field as it is)."""
    ids = {"signal_id": signal_id, "intent_id": intent_id, "client_order_id": client_order_id}
    new = {k: v for k, v in ids.items() if v}
    if new:
        # A fresh dict: a task that copied the context earlier keeps the ids it had.
        _correlation.set({**(_correlation.get() or {}), **new})


def log_context() -> dict[str, str]:
    """The correlation ids bound in the current context."""
    return dict(_correlation.get() or {})


@contextlib.contextmanager
def log_scope(
    *,
    signal_id: str | None = None,
    intent_id: str | None = None,
    client_order_id: str | None = None,
) -> Iterator[None]:
    """Bind ids for the block; whatever is bound inside is forgotten on exit."""
    token = _correlation.set(log_context())
    try:
        bind_log_context(signal_id=signal_id, intent_id=intent_id, client_order_id=client_order_id)
        yield
    finally:
        _correlation.reset(token)


class CorrelationFilter(logging.Filter):
    """Copies the bound correlation ids onto each record (ids passed in `extra=` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_correlation.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, val in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = val
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return dumps(out)


def make_handler(
    service: str, stream: IO[str] | None = None, *, json: bool = True
) -> logging.Handler:
    """The services' log handler: JSON lines carrying the correlation ids."""
    handler = logging.StreamHandler(stream)  # None: sys.stderr
    if json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    handler.addFilter(CorrelationFilter())
    return handler


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    handler = make_handler(service, json=json)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log is noise at trading volumes; errors still surface.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
