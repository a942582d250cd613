"""What an execution is built from: its collaborators (:class:`ExecDeps`, one per router, shared
by every execution, the recovery and the child orders), the events a step collects
(policy `Note`s, published once the step's records are stored) and the first record of every
child it places (:func:`child_record`, also the recovery's for a child allocated but never
recorded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from s4_router.adapters.exchange.base import BookTop
from s4_router.adapters.leases import Leases
from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.metrics import RouterMetrics
from s4_router.policies.model import Place
from s4_router.service_layer.book_source import BookSource
from s4_router.service_layer.fill_book import FillBook
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.quality_tracker import QualityTracker
from s4_router.service_layer.venue_ops import VenueOps
from svckit.clock import Clock
from svckit.redisio import LockQueue, RedisClient
from tradekit.enums import OrderStatus, OrderType, TimeInForce
from tradekit.orders import OrderRecord, StateChange

S = OrderStatus


class ProgressHook(Protocol):
    async def __call__(
        self, coid: str, *, filled: Decimal, avg_price: Decimal | None, done: bool
    ) -> None: ...


@dataclass
class ExecDeps:
    orders: OrdersRepository
    redis: RedisClient
    ops: VenueOps
    clock: Clock
    metrics: RouterMetrics
    quality: QualityTracker
    publisher: Publisher
    venue: str
    owner: str
    fills: FillBook
    leases: Leases
    books: BookSource  # pre-trade books: the published mkt:depth when fresh, else the venue's
    lock_wait_ms: int = 1000
    # Entry progress after every step (protective orders follow the fills they protect).
    on_progress: ProgressHook | None = None
    # This process's line for `lock:pos:{symbol}`: its executions take turns in arrival
    # order, and only the head polls Redis (against S3 and the other replicas).
    pos_queue: LockQueue = field(default_factory=LockQueue)


def child_record(
    parent: OrderRecord,
    p: Place,
    *,
    venue: str,
    ts: int,
    updated_ts: int | None = None,
    reason: str | None = None,
    book: BookTop | None = None,
) -> OrderRecord:
    """Child `p` of `parent` as first recorded: SUBMITTED (its send follows the record), with
    the book it was sent against when there is one."""
    return OrderRecord(
        client_order_id=p.child_id,
        parent_client_order_id=parent.client_order_id,
        intent_id=parent.intent_id,
        venue=venue,
        market=parent.market,
        symbol=parent.symbol,
        side=p.side,
        type=OrderType.MARKET if p.price is None else OrderType.LIMIT,
        qty=p.qty,
        price=p.price,
        reduce_only=parent.reduce_only,
        status=S.SUBMITTED,
        history=[
            StateChange(status=S.NEW, ts=ts),
            StateChange(status=S.SUBMITTED, ts=ts, reason=reason),
        ],
        role=p.role,
        slice_index=p.slice_index,
        post_only=p.post_only,
        time_in_force=TimeInForce.GTX if p.post_only else None,
        mid_at_send=book.mid if book is not None and book.bids and book.asks else None,
        book_top3={"bids": list(book.bids[:3]), "asks": list(book.asks[:3])} if book else None,
        ts_send=ts,
        created_ts=ts,
        updated_ts=ts if updated_ts is None else updated_ts,
    )
