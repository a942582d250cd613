"""The ledger of entries in flight, `s3:entries` (a Redis hash), behind the
`concurrent_entries` and `risk_budget` gates.

An *entry in flight* is an open (non reduce-only) parent order that S4 has not finished: from the
moment S3 emits it until S4 reports a terminal status (FILLED, CANCELED, REJECTED, EXPIRED).
Counting it from the `orders` collection alone would be both slow (one query per status) and
late (S4 inserts the order only when it takes the intent from the stream, so a second decision
in that window would see zero). So S3 keeps a small shared ledger, reconciled with what S4
reports:

* S3 adds `{client_order_id: "symbol|market|margin|ts"}` inside `lock:pos:{symbol}`, right
  after claiming `idem:order:{id}`, before publishing: the next decision on that symbol, on any
  replica, sees it;
* removed when S4 answers the REST call with a terminal status or a refusal, when
  `orders:executed` reports a terminal status (every replica tails the stream; HDEL is
  idempotent), or by the reconciler;
* the reconciler (every `S3_ENTRIES_RECONCILE_MS`) drops entries whose order is terminal in the
  `orders` collection, and entries S4 never recorded after `S3_ENTRIES_GRACE_MS` (an intent S4
  refused or never received); it *adopts* open parent orders S4 holds that the ledger lacks
  (e.g. sent to S4 directly), so the gates count what S4 reports, not only what S3 sent.

The decision reads the whole hash in the same pipeline as its features (entries in flight are
few); `tally` counts the symbol/market's entries and sums the margin of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from redis import exceptions as redis_exc

from svckit import jsonutil, keys
from svckit.clock import Clock
from svckit.errors import InfraError
from svckit.redisio import RedisClient
from svckit.store.base import DocumentStore, Query
from tradekit.enums import OrderStatus

log = logging.getLogger(__name__)

ENTRIES_KEY = "s3:entries"
OPEN_STATUSES = tuple(s.value for s in OrderStatus if not s.is_terminal)
TERMINAL = frozenset(s.value for s in OrderStatus if s.is_terminal)


def encode(symbol: str, market: str, margin: Decimal | float | str, ts: int) -> str:
    return f"{symbol}|{market}|{margin}|{ts}"


def decode(value: str) -> tuple[str, str, float, int]:
    symbol, market, margin, ts = value.split("|")
    return symbol, market, float(margin), int(ts)


def tally(ledger: Mapping[str, str] | None, symbol: str, market: str) -> tuple[int, float]:
    """(entries on symbol/market, margin of all entries in flight)."""
    if not ledger:
        return 0, 0.0
    n, margin = 0, 0.0
    prefix = f"{symbol}|{market}|"
    for value in ledger.values():
        try:
            margin += float(value.split("|", 3)[2])
        except (IndexError, ValueError):
            continue  # a malformed field must not break decisions; the reconciler drops it
        if value.startswith(prefix):
            n += 1
    return n, margin


def _intent_margin(doc: Mapping[str, Any]) -> float:
    intent = doc.get("intent") or {}
    try:
        qty = float(doc.get("qty") or intent.get("qty") or 0)
        price = float(intent.get("ref_price") or doc.get("avg_price") or 0)
        lev = int(intent.get("leverage") or 1)
    except (TypeError, ValueError):
        return 0.0
    return qty * price / lev if doc.get("market") == "FUT" else qty * price


class EntriesLedger:
    def __init__(
        self,
        *,
        redis: RedisClient,
        store: DocumentStore,
        clock: Clock,
        symbols: Iterable[str],
        grace_ms: int,
        reconcile_ms: int,
    ) -> None:
        self.redis = redis
        self.store = store
        self.clock = clock
        self.symbols = tuple(symbols)
        self.grace_ms = grace_ms
        self.reconcile_ms = reconcile_ms
        self.reconciles = 0

    async def add(self, coid: str, symbol: str, market: str, margin: Decimal | float | str) -> None:
        await self.redis.hset(
            ENTRIES_KEY, coid, encode(symbol, market, margin, self.clock.now_ms())
        )

    async def remove(self, coid: str) -> None:
        await self.redis.hdel(ENTRIES_KEY, coid)

    async def snapshot(self) -> dict[str, str]:
        raw: Any = await self.redis.hgetall(ENTRIES_KEY)
        return {str(k): str(v) for k, v in raw.items()}

    async def reconcile(self) -> tuple[int, int]:
        """One pass (see module docstring); returns (removed, adopted)."""
        now = self.clock.now_ms()
        ledger = await self.snapshot()
        removed = adopted = 0
        for coid, value in ledger.items():
            try:
                _, _, _, ts = decode(value)
            except ValueError:
                await self.remove(coid)
                removed += 1
                continue
            doc = await self.store.get("orders", coid)
            if (doc is None and now - ts > self.grace_ms) or (
                doc is not None and doc.get("status") in TERMINAL
            ):
                await self.remove(coid)
                removed += 1
        for symbol in self.symbols:
            for status in OPEN_STATUSES:
                rows = await self.store.find(
                    "orders", Query(where={"symbol": symbol, "status": status})
                )
                for doc in rows:
                    coid = str(doc.get("client_order_id") or doc.get("_key"))
                    if (
                        doc.get("parent_client_order_id") is not None
                        or doc.get("reduce_only")
                        or coid in ledger
                    ):
                        continue
                    margin = _intent_margin(doc)
                    ts = int(doc.get("created_ts") or now)
                    await self.redis.hsetnx(
                        ENTRIES_KEY, coid, encode(symbol, str(doc.get("market")), margin, ts)
                    )
                    adopted += 1
        self.reconciles += 1
        return removed, adopted

    async def on_executed(self, event: Mapping[str, Any]) -> None:
        if event.get("status") in TERMINAL and isinstance(event.get("client_order_id"), str):
            await self.remove(event["client_order_id"])

    async def _tail_id(self) -> str:
        last: Any = await self.redis.xrevrange(keys.ORDERS_EXECUTED, count=1)
        return str(last[0][0]) if last else "0-0"

    async def poll_executed(self, last_id: str) -> str:
        """Apply the `orders:executed` events after `last_id` (non-blocking); new last id."""
        resp: Any = await self.redis.xread({keys.ORDERS_EXECUTED: last_id}, count=512)
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                last_id = str(entry_id)
                with contextlib.suppress(ValueError, TypeError):
                    event = jsonutil.loads(fields.get("data", ""))
                    if isinstance(event, dict):
                        await self.on_executed(event)
        return last_id

    async def run(self, stop: asyncio.Event, *, poll_ms: int = 100) -> None:
        """Follow `orders:executed` (from now on) every `poll_ms` and reconcile every
        `reconcile_ms`, until `stop` is set. Polls rather than blocking in XREAD so that stopping
        never has to cancel a Redis call half-way (which can leak its connection)."""
        last_id: str | None = None
        next_reconcile = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if last_id is None:
                    last_id = await self._tail_id()
                if loop.time() >= next_reconcile:
                    await self.reconcile()
                    next_reconcile = loop.time() + self.reconcile_ms / 1000
                last_id = await self.poll_executed(last_id)
            except (redis_exc.RedisError, InfraError, OSError) as exc:
                log.warning("entries ledger: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_ms / 1000)
