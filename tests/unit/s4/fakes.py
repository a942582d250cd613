"""Hand-written fakes of S4's ports (cosmicpython: a fake subclasses the port; no MagicMock)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from s4_router.adapters.orders_repo import (
    Doc,
    OrdersRepository,
    Sort,
    fill_key,
    from_doc,
)
from svckit.errors import DuplicateKey, NotFound
from tradekit.orders import FillRecord, OrderRecord


class InMemoryOrdersRepository(OrdersRepository):
    """In-memory fake (unit tests): the store's unique indexes and equality filters."""

    def __init__(self) -> None:
        self.orders: dict[str, Doc] = {}
        self.fill_docs: list[Doc] = []

    async def add(self, order: OrderRecord) -> None:
        if order.client_order_id in self.orders:
            raise DuplicateKey("orders", order.client_order_id)
        self.orders[order.client_order_id] = order.model_dump(mode="json")

    async def save(self, order: OrderRecord, fields: Iterable[str]) -> None:
        await self.patch(order.client_order_id, order.model_dump(mode="json", include=set(fields)))

    async def patch(self, client_order_id: str, patch: Doc) -> None:
        if client_order_id not in self.orders:
            raise NotFound(f"orders: {client_order_id}")
        self.orders[client_order_id].update(copy.deepcopy(patch))

    async def get(self, client_order_id: str) -> OrderRecord | None:
        doc = self.orders.get(client_order_id)
        return from_doc(OrderRecord, doc) if doc is not None else None

    async def find(
        self, *, sort: Sort | None = None, limit: int | None = None, **where: Any
    ) -> list[OrderRecord]:
        docs = _select(list(self.orders.values()), where, sort)
        return [from_doc(OrderRecord, d) for d in docs[:limit]]

    async def add_fill(self, fill: FillRecord) -> bool:
        if any(fill_key(from_doc(FillRecord, d)) == fill_key(fill) for d in self.fill_docs):
            return False
        self.fill_docs.append(fill.model_dump(mode="json"))
        return True

    async def fills(self, *, sort: Sort | None = None, **where: Any) -> list[FillRecord]:
        return [from_doc(FillRecord, d) for d in _select(self.fill_docs, where, sort)]


def _select(docs: list[Doc], where: dict[str, Any], sort: Sort | None) -> list[Doc]:
    out = [d for d in docs if all(d.get(k) == v for k, v in where.items())]
    if sort is not None:
        name, direction = sort
        out.sort(key=lambda d: d.get(name) or 0, reverse=direction == "desc")
    return out
