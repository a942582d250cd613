"""JSON encoding used on Redis and in the store: Decimals as strings (exact), compact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=_default).decode()


def dumpb(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def loads(data: str | bytes) -> Any:
    return orjson.loads(data)
