"""The orders repository: the one way S4 reads and writes its `orders` and `fills` documents.

Records are typed (:class:`~tradekit.orders.OrderRecord`, :class:`~tradekit.orders.FillRecord`)
and map 1:1 onto the stored documents — S3, the reconciler and the chaos checker read those
documents, so a record's JSON dump *is* the document (plus `_key` = `client_order_id` for
orders; fills get a generated key). Store-internal fields (`_key`, `_id`, `_rev`) never leave
this module.

:meth:`OrdersRepository.book_fill` is the write half of the one fill-booking path
(`service_layer.fill_book` adds the overfill's alert and halt).

:class:`StoreOrdersRepository` implements it over the document store port (SQLite, ArangoDB);
unit tests use an in-memory fake (`tests/unit/s4/fakes.py`) held to the same contract tests.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

from s4_router.domain.fills import FillKey, FillLedger
from svckit.errors import DuplicateKey
from svckit.store.base import DocumentStore, Query
from tradekit.orders import FillRecord, OrderRecord

Doc = dict[str, Any]
Sort = tuple[str, Literal["asc", "desc"]]
R = TypeVar("R", OrderRecord, FillRecord)
BULK_PARSE = 200


@dataclass(frozen=True, slots=True)
class Booked:
    stored: bool  # a new fill record (False: stored before)
    over: tuple[
        FillLedger, ...
    ] = ()  # the ledgers this fill takes past their quantity (an overfill)


def fill_key(fill: FillRecord) -> FillKey:
    return (fill.venue, fill.order_id, fill.trade_id)


def from_doc(cls: type[R], doc: Doc) -> R:
    return cls.model_validate({k: v for k, v in doc.items() if not k.startswith("_")})


def ledger_of(qty: Decimal, fills: Iterable[FillRecord]) -> FillLedger:
    ledger = FillLedger(qty)
    for f in fills:
        ledger.book(fill_key(f), f.qty)
    return ledger


class OrdersRepository(abc.ABC):
    """Port: orders and fills as typed records."""

    # ---- orders ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def add(self, order: OrderRecord) -> None:
        """Store a new order; DuplicateKey when its client_order_id is taken."""

    @abc.abstractmethod
    async def save(self, order: OrderRecord, fields: Iterable[str]) -> None:
        """Write `fields` of an order stored before (the others stay as stored)."""

    @abc.abstractmethod
    async def patch(self, client_order_id: str, patch: Doc) -> None:
        """Merge raw JSON fields into a stored order (NotFound when absent)."""

    @abc.abstractmethod
    async def get(self, client_order_id: str) -> OrderRecord | None: ...

    @abc.abstractmethod
    async def find(
        self,
        *,
        sort: Sort | None = None,
        limit: int | None = None,
        **where: Any,
    ) -> list[OrderRecord]:
        """Orders whose fields equal `where` (JSON values), optionally sorted and limited."""

    async def children(self, parent: str) -> list[OrderRecord]:
        return await self.find(parent_client_order_id=parent, sort=("created_ts", "asc"))

    async def cancel_requested(self, client_order_id: str) -> bool:
        order = await self.get(client_order_id)
        return order is not None and order.cancel_requested

    # ---- fills -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_fill(self, fill: FillRecord) -> bool:
        """Store a fill; False when `(venue, order_id, trade_id)` is stored already."""

    @abc.abstractmethod
    async def fills(self, *, sort: Sort | None = None, **where: Any) -> list[FillRecord]: ...

    async def fills_of_parent(self, parent: str) -> list[FillRecord]:
        return await self.fills(parent_client_order_id=parent, sort=("ts_fill", "asc"))

    async def ledger(self, client_order_id: str, qty: Decimal) -> FillLedger:
        """The ledger of one order from its stored fills."""
        return ledger_of(qty, await self.fills(client_order_id=client_order_id))

    async def book_fill(self, fill: FillRecord, *ledgers: FillLedger) -> Booked:
        """Store `fill` once and count it in every ledger (the order's, then its parent's).

        The store equals the venue: a trade that takes an order past its quantity is stored
        all the same (that position exists) and reported in `over`. A ledger counts the trade
        only once it is stored (or found stored by an earlier owner), never before."""
        key = fill_key(fill)
        if ledgers and all(key in ledger.seen for ledger in ledgers):
            return Booked(stored=False)
        over = tuple(ledger for ledger in ledgers if ledger.overfills(key, fill.qty))
        stored = await self.add_fill(fill)
        for ledger in ledgers:
            ledger.book(key, fill.qty)
        return Booked(stored=stored, over=over)


class StoreOrdersRepository(OrdersRepository):
    """Over the document store port (SQLite embedded, ArangoDB in production)."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def add(self, order: OrderRecord) -> None:
        await self.store.insert(
            "orders", {"_key": order.client_order_id, **order.model_dump(mode="json")}
        )

    async def save(self, order: OrderRecord, fields: Iterable[str]) -> None:
        patch = order.model_dump(mode="json", include=set(fields))
        await self.store.update("orders", order.client_order_id, patch)

    async def patch(self, client_order_id: str, patch: Doc) -> None:
        await self.store.update("orders", client_order_id, patch)

    async def get(self, client_order_id: str) -> OrderRecord | None:
        doc = await self.store.get("orders", client_order_id)
        return from_doc(OrderRecord, doc) if doc is not None else None

    async def find(
        self, *, sort: Sort | None = None, limit: int | None = None, **where: Any
    ) -> list[OrderRecord]:
        query = Query(where=where, sort=[sort] if sort else (), limit=limit)
        return await _parse(OrderRecord, await self.store.find("orders", query))

    async def add_fill(self, fill: FillRecord) -> bool:
        try:
            await self.store.insert("fills", fill.model_dump(mode="json"))
        except DuplicateKey:
            return False
        return True

    async def fills(self, *, sort: Sort | None = None, **where: Any) -> list[FillRecord]:
        query = Query(where=where, sort=[sort] if sort else ())
        return await _parse(FillRecord, await self.store.find("fills", query))


async def _parse(cls: type[R], docs: list[Doc]) -> list[R]:
    """Records of `docs`; a bulk read (the reconciler's scans: thousands of records, ~10-50 µs
    each) is validated on a worker thread so that the event loop keeps its turns."""
    if len(docs) < BULK_PARSE:
        return [from_doc(cls, d) for d in docs]
    return await asyncio.to_thread(lambda: [from_doc(cls, d) for d in docs])
