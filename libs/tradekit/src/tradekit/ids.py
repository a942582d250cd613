"""Deterministic identifiers: every retry of the same decision yields the same ids.

Binance accepts client order ids matching ``^[.A-Z:/a-z0-9_-]{1,36}$``; we restrict ours to
``[A-Za-z0-9_-]{1,32}`` so that child orders ``{client_order_id}-E{n}`` (n ≤ 99) still fit.
"""

from __future__ import annotations

import functools
import hashlib
import re

CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
_CHILD_RE = re.compile(r"^(?P<parent>[A-Za-z0-9_-]{1,32})-E(?P<n>[0-9]{1,2})$")


def decision_client_order_id(
    *, svc: str, symbol: str, side: str, feature_ts_ms: int, config_rev: str, market: str = ""
) -> str:
    """`{svc}-{sym}-{ts}-{h}`: spec C5's shape, with the random part replaced by a digest of the
    decision's inputs so that the same decision can never open twice. `market` (optional, so
    older callers keep their ids) separates a FUT and a SPOT entry decided on the same inputs."""
    key = f"{svc}|{symbol}|{side}|{feature_ts_ms}|{config_rev}"
    if market:
        key += f"|{market}"
    digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
    sym = _symbol_slug(symbol)
    coid = f"{svc}-{sym}-{feature_ts_ms // 1000}-{digest}"
    return coid[-32:] if len(coid) > 32 else coid


@functools.lru_cache(maxsize=1024)
def _symbol_slug(symbol: str) -> str:
    return re.sub(r"[^a-z0-9]", "", symbol.lower().removesuffix("usdt"))[:6] or "x"


def child_order_id(client_order_id: str, n: int) -> str:
    """Deterministic id of the n-th child order sent for an intent (`{client_order_id}-E{n}`)."""
    if not 1 <= n <= 99:
        raise ValueError(f"child order index out of range: {n}")
    return f"{client_order_id}-E{n}"


def parent_of(child_id: str) -> tuple[str, int] | None:
    m = _CHILD_RE.match(child_id)
    return (m.group("parent"), int(m.group("n"))) if m else None
