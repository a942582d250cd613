"""The one place S3's service-layer outcomes become HTTP statuses (as S4's
`entrypoints/statuses.py`): the service layer reports how a run or a batch item ended, never a
status code."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from s3_strategy.service_layer.decide import DecideRefused, ItemFailed, UnknownSymbol
from s3_strategy.service_layer.task_runs import RunDisposition
from svckit.errors import InfraError

TASK_STATUS: Mapping[RunDisposition, int] = MappingProxyType(
    {
        RunDisposition.DONE: 200,
        RunDisposition.REPLAYED: 200,
        RunDisposition.IN_PROGRESS: 409,
        RunDisposition.FAILED: 503,
    }
)


def batch_item(item: dict[str, Any] | ItemFailed) -> dict[str, Any]:
    """A decision as is; an item that could not be decided as `{symbol, status, error}`."""
    if not isinstance(item, ItemFailed):
        return item
    exc, symbol = item.error, item.symbol
    if isinstance(exc, UnknownSymbol):
        status, error = 422, f"unknown symbol {symbol!r}"
    elif isinstance(exc, DecideRefused):
        status, error = 422, str(exc)
    elif isinstance(exc, InfraError):
        status, error = 503, f"service unavailable: {exc}"
    else:
        status, error = 500, f"internal error: {type(exc).__name__}: {exc}"
    return {"symbol": symbol, "status": status, "error": error}
