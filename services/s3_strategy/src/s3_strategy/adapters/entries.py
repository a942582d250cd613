"""The ledger of entries in flight and open positions, `s3:entries` (a Redis hash), behind the
`concurrent_entries` and `risk_budget` gates.

**Positions**: a filled entry is still risk until its protection (SL/TP brackets, OCO) has
closed it, so it keeps counting toward both gates. The source is S4's own record of the
protection, `strategy_events/protection:{client_order_id}` (`active` until its machine is final:
the position closed by the stop, the take profit or the OCO, or the protection failed — which S4
alerts critically): no S4 change, and every replica of S3 sees the same thing. A field's last
part says which it is: `E` an entry in flight, `EP` an entry in flight whose intent carries
protection (it becomes a position when it fills), `P` an open position. An entry whose intent
has no protection is dropped when it is filled: nothing tells S3 when such a position is closed
(bundles on the desk always carry brackets).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


ENTRY, PROTECTED_ENTRY, POSITION = "E", "EP", "P"
KINDS = frozenset({ENTRY, PROTECTED_ENTRY, POSITION})


def encode(
    symbol: str, market: str, margin: Decimal | float | str, ts: int, kind: str = ENTRY
) -> str:
    return f"{symbol}|{market}|{margin}|{ts}|{kind}"


def decode(value: str) -> tuple[str, str, float, int, str]:
    parts = value.split("|")
    if len(parts) == 4:  # written before positions were tracked: an entry
        parts.append(ENTRY)
    symbol, market, margin, ts, kind = parts
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    return symbol, market, float(margin), int(ts), kind


@dataclass(frozen=True, slots=True)
class Tally:
    entries: int  # entries in flight on this symbol/market
    positions: int  # open positions on this symbol/market
    margin_entries: float  # margin/quote of every entry in flight (all symbols)
    margin_positions: float  # margin/quote of every open position (all symbols)


def tally(ledger: Mapping[str, str] | None, symbol: str, market: str) -> Tally:
    if not ledger:
        return Tally(0, 0, 0.0, 0.0)
    entries = positions = 0
    m_entries = m_positions = 0.0
    prefix = f"{symbol}|{market}|"
    for value in ledger.values():
        parts = value.split("|")
        try:
            margin = float(parts[2])
        except (IndexError, ValueError):
            continue  # a malformed field must not break decisions; the reconciler drops it
        is_position = len(parts) > 4 and parts[4] == POSITION
        if is_position:
            m_positions += margin
        else:
            m_entries += margin
        if value.startswith(prefix):
            if is_position:
                positions += 1
            else:
                entries += 1
    return Tally(entries, positions, m_entries, m_positions)


def _intent_margin(doc: Mapping[str, Any]) -> float:
    intent = doc.get("intent") or {}
    try:
        qty = float(doc.get("qty") or intent.get("qty") or 0)
        price = float(intent.get("ref_price") or doc.get("avg_price") or 0)
        lev = int(intent.get("leverage") or 1)
    except (TypeError, ValueError):
        return 0.0
    return qty * price / lev if doc.get("market") == "FUT" else qty * price


def filled_positive(qty: object) -> bool:
    try:
        return Decimal(str(qty)) > 0
    except ArithmeticError:  # decimal.InvalidOperation: None, "", garbage
        return False


def protected(intent: object) -> bool:
    """Does the intent ask S4 for protection (FUT brackets, SPOT OCO)?"""
    if not isinstance(intent, Mapping):
        return False
    policy = intent.get("exec_policy") or {}
    return bool(intent.get("sl") or intent.get("tp")) or (
        isinstance(policy, Mapping) and policy.get("type") == "OCO"
    )


@dataclass(kw_only=True, eq=False)
class EntriesLedger:
    redis: RedisClient
    store: DocumentStore
    clock: Clock
    symbols: Sequence[str]
    grace_ms: int
    reconcile_ms: int

    async def add(
        self,
        coid: str,
        symbol: str,
        market: str,
        margin: Decimal | float | str,
        *,
        protected: bool = False,
    ) -> None:
        kind = PROTECTED_ENTRY if protected else ENTRY
        await self.redis.hset(
            ENTRIES_KEY, coid, encode(symbol, market, margin, self.clock.now_ms(), kind)
        )

    async def remove(self, coid: str) -> None:
        await self.redis.hdel(ENTRIES_KEY, coid)

    async def finished(self, coid: str, filled: bool) -> None:
        """S4 reports the entry terminal: a protected entry that filled (even partly) is now an
        open position; anything else leaves the ledger."""
        raw: Any = await self.redis.hget(ENTRIES_KEY, coid)
        if raw is None:
            return
        try:
            symbol, market, margin, ts, kind = decode(str(raw))
        except ValueError:
            await self.remove(coid)
            return
        if filled and kind in (PROTECTED_ENTRY, POSITION):
            await self.redis.hset(ENTRIES_KEY, coid, encode(symbol, market, margin, ts, POSITION))
        else:
            await self.remove(coid)

    async def _protection_active(self, coid: str) -> bool | None:
        """S4's protection record for the entry: True open, False closed, None absent."""
        doc = await self.store.get("strategy_events", f"protection:{coid}")
        if doc is None:
            return None
        return bool(doc.get("active")) and filled_positive(doc.get("entry_filled"))

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
                symbol, market, margin, ts, kind = decode(value)
            except ValueError:
                await self.remove(coid)
                removed += 1
                continue
            if kind == POSITION:
                if not await self._protection_active(coid):
                    await self.remove(coid)  # closed by its stop / take profit / OCO
                    removed += 1
                continue
            doc = await self.store.get("orders", coid)
            if doc is not None and doc.get("status") in TERMINAL:
                if kind == PROTECTED_ENTRY and await self._protection_active(coid):
                    await self.redis.hset(
                        ENTRIES_KEY, coid, encode(symbol, market, margin, ts, POSITION)
                    )
                else:
                    await self.remove(coid)
                    removed += 1
            elif doc is None and now - ts > self.grace_ms:
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
                    kind = PROTECTED_ENTRY if protected(doc.get("intent")) else ENTRY
                    await self.redis.hsetnx(
                        ENTRIES_KEY, coid, encode(symbol, str(doc.get("market")), margin, ts, kind)
                    )
                    adopted += 1
            # Open positions S4 protects that the ledger lacks (an entry sent to S4 directly,
            # a ledger lost with its Redis): the gates count what S4 reports.
            rows = await self.store.find(
                "strategy_events",
                Query(where={"kind": "PROTECTION", "symbol": symbol, "active": True}),
            )
            for doc in rows:
                coid = str(doc.get("parent_client_order_id"))
                if coid in ledger or not filled_positive(doc.get("entry_filled")):
                    continue
                intent = doc.get("intent") or {}
                margin = _intent_margin(
                    {"market": doc.get("market"), "intent": intent, "qty": doc.get("entry_filled")}
                )
                ts = int(doc.get("ts") or now)
                await self.redis.hsetnx(
                    ENTRIES_KEY, coid, encode(symbol, str(doc.get("market")), margin, ts, POSITION)
                )
                adopted += 1
        return removed, adopted

    async def on_executed(self, event: Mapping[str, Any]) -> None:
        if event.get("status") in TERMINAL and isinstance(event.get("client_order_id"), str):
            await self.finished(event["client_order_id"], filled_positive(event.get("filled_qty")))

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
                    last: Any = await self.redis.xrevrange(keys.ORDERS_EXECUTED, count=1)
                    last_id = str(last[0][0]) if last else "0-0"
                if loop.time() >= next_reconcile:
                    await self.reconcile()
                    next_reconcile = loop.time() + self.reconcile_ms / 1000
                # the events after last_id, without blocking
                resp: Any = await self.redis.xread({keys.ORDERS_EXECUTED: last_id}, count=512)
                cursor = last_id  # moves on once the whole batch applied: a failure re-reads it
                for _stream, entries in resp or []:
                    for entry_id, fields in entries:
                        cursor = str(entry_id)
                        with contextlib.suppress(ValueError, TypeError):
                            event = jsonutil.loads(fields.get("data", ""))
                            if isinstance(event, dict):
                                await self.on_executed(event)
                last_id = cursor
            except (redis_exc.RedisError, InfraError, OSError) as exc:
                log.warning("entries ledger: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_ms / 1000)
