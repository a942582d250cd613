"""The orders repository: one contract for the store-backed repository (real SQLite) and the
in-memory fake, so the fake the unit tests use behaves like the store; records map 1:1 onto the
stored documents (S3, the reconciler and the chaos checker read those); `book_fill` stores a
fill once and counts it once, an overfill stored (the venue's truth) and reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from s4_router.adapters.orders_repo import BULK_PARSE, OrdersRepository, StoreOrdersRepository
from s4_router.domain.fills import FillLedger
from s4_router.domain.outcomes import Disposition
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.fill_book import FillBook
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.resends import IntakeBusy, Resends
from svckit import keys
from svckit.clock import ManualClock
from svckit.errors import DuplicateKey
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.unit.s4.fakes import InMemoryOrdersRepository
from tradekit.enums import Liquidity, Market, OrderRole, OrderStatus, OrderType, Side
from tradekit.intents import MarketPolicy, OrderIntent
from tradekit.orders import FillRecord, OrderRecord, StateChange

S = OrderStatus


def order(coid: str, *, parent: str | None = None, ts: int = 1, **kw: Any) -> OrderRecord:
    fields: dict[str, Any] = {
        "client_order_id": coid,
        "parent_client_order_id": parent,
        "intent_id": "i-1",
        "venue": "sim",
        "market": Market.FUT,
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "type": OrderType.MARKET,
        "qty": D("0.002"),
        "status": S.NEW,
        "history": [StateChange(status=S.NEW, ts=ts)],
        "created_ts": ts,
        "updated_ts": ts,
        "role": OrderRole.PARENT if parent is None else OrderRole.TAKER,
    }
    fields.update(kw)
    return OrderRecord(**fields)


def fill(
    cid: str, trade: str, qty: str = "0.001", *, parent: str = "c-1", ts: int = 1
) -> FillRecord:
    return FillRecord(
        venue="sim",
        order_id=f"v-{cid}",
        trade_id=trade,
        client_order_id=cid,
        parent_client_order_id=parent,
        market=Market.FUT,
        symbol="BTCUSDT",
        side=Side.BUY,
        price=D("65000.1"),
        qty=D(qty),
        fee=D("0.0000004"),
        fee_asset="BTC",
        liquidity=Liquidity.TAKER,
        ts_fill=ts,
        role=OrderRole.TAKER,
    )


@pytest.fixture(params=["store", "fake"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OrdersRepository]:
    if request.param == "fake":
        yield InMemoryOrdersRepository()
        return
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.bootstrap()
    try:
        yield StoreOrdersRepository(store)
    finally:
        await store.close()


async def raw_order(repo: OrdersRepository, coid: str) -> dict[str, Any] | None:
    """The stored document as S3 and the chaos checker read it."""
    if isinstance(repo, StoreOrdersRepository):
        return await repo.store.get("orders", coid)
    assert isinstance(repo, InMemoryOrdersRepository)
    return repo.orders.get(coid)


async def test_an_order_is_stored_as_its_records_json_under_its_client_order_id(
    repo: OrdersRepository,
) -> None:
    rec = order("c-1", arrival_mid=D("65000.5"), exec_state={"next_n": 2})
    await repo.add(rec)
    doc = await raw_order(repo, "c-1")
    assert doc is not None
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == rec.model_dump(mode="json")
    if isinstance(repo, StoreOrdersRepository):
        assert doc["_key"] == "c-1"
    assert await repo.get("c-1") == rec
    assert await repo.get("c-2") is None


async def test_a_taken_client_order_id_is_a_duplicate_key(repo: OrdersRepository) -> None:
    await repo.add(order("c-1"))
    with pytest.raises(DuplicateKey):
        await repo.add(order("c-1", side=Side.SELL))
    got = await repo.get("c-1")
    assert got is not None and got.side is Side.BUY


async def test_save_writes_only_the_named_fields(repo: OrdersRepository) -> None:
    rec = order("c-1")
    await repo.add(rec)
    rec.status = S.SUBMITTED
    rec.history.append(StateChange(status=S.SUBMITTED, ts=5, reason="sent"))
    rec.qty = D("9")  # not named: stays as stored
    await repo.save(rec, {"status", "history"})
    got = await repo.get("c-1")
    assert got is not None
    assert got.status is S.SUBMITTED and got.history[-1].reason == "sent"
    assert got.qty == D("0.002")


async def test_queries_children_parents_venue_id_recent_and_cancel_flag(
    repo: OrdersRepository,
) -> None:
    await repo.add(order("c-1", status=S.ACCEPTED, updated_ts=10))
    await repo.add(order("c-1-E2", parent="c-1", ts=3, status=S.ACCEPTED, venue_order_id="77"))
    await repo.add(order("c-1-E1", parent="c-1", ts=2, status=S.FILLED, updated_ts=30))
    await repo.add(order("c-2", status=S.FILLED, market=Market.SPOT, updated_ts=20))
    assert [c.client_order_id for c in await repo.children("c-1")] == ["c-1-E1", "c-1-E2"]
    parents = await repo.find(status=S.ACCEPTED.value, parent_client_order_id=None)
    assert [p.client_order_id for p in parents] == ["c-1"]
    recent = await repo.find(market=Market.FUT.value, sort=("updated_ts", "desc"), limit=2)
    assert [o.client_order_id for o in recent] == ["c-1-E1", "c-1"]
    working = await repo.find(status=S.ACCEPTED.value, market=Market.FUT.value)
    assert sorted(o.client_order_id for o in working) == ["c-1", "c-1-E2"]
    assert not await repo.cancel_requested("c-1")
    await repo.patch("c-1", {"cancel_requested": True, "updated_ts": 99})
    assert await repo.cancel_requested("c-1")
    got = await repo.get("c-1")
    assert got is not None and got.updated_ts == 99


async def test_book_fill_stores_once_and_counts_a_rereported_trade_once(
    repo: OrdersRepository,
) -> None:
    child, parent = FillLedger(D("0.002")), FillLedger(D("0.002"))
    first = await repo.book_fill(fill("c-1-E1", "t-1"), child, parent)
    again = await repo.book_fill(fill("c-1-E1", "t-1"), child, parent)
    assert first.stored and not first.over
    assert not again.stored and not again.over
    assert child.filled == parent.filled == D("0.001")
    assert [f.trade_id for f in await repo.fills(client_order_id="c-1-E1")] == ["t-1"]
    # A new owner of the order (fresh ledgers, the fill already stored): counted, not stored.
    fresh = FillLedger(D("0.002"))
    late = await repo.book_fill(fill("c-1-E1", "t-1"), fresh)
    assert not late.stored and fresh.filled == D("0.001")
    assert (await repo.ledger("c-1-E1", D("0.002"))).filled == D("0.001")


async def test_book_fill_stores_an_overfill_and_names_the_ledgers_it_exceeds(
    repo: OrdersRepository,
) -> None:
    child, parent = FillLedger(D("0.001")), FillLedger(D("0.003"))
    assert (await repo.book_fill(fill("c-1-E1", "t-1"), child, parent)).stored
    over = await repo.book_fill(fill("c-1-E1", "t-2", ts=2), child, parent)
    # The venue filled it: the store holds it (the position exists), the child's ledger is over.
    assert over.stored and over.over == (child,)
    assert child.filled == D("0.002") > child.qty
    assert [f.trade_id for f in await repo.fills_of_parent("c-1")] == ["t-1", "t-2"]


async def test_the_fill_book_alerts_an_overfill_once_and_halts_entries(
    redis: RedisClient,
) -> None:
    # The fake repository under the service layer's booking path (Redis is real).
    repo = InMemoryOrdersRepository()
    metrics = RouterMetrics()
    book = FillBook(
        orders=repo,
        redis=redis,
        metrics=metrics,
        publisher=Publisher(redis, clock=ManualClock(0), metrics=metrics),
    )
    ledger = FillLedger(D("0.001"))
    await book.book(fill("c-1-E1", "t-1"), ledger)
    assert await redis.xlen(keys.ALERTS) == 0
    for _ in range(2):  # re-reported: stored and alerted once
        await book.book(fill("c-1-E1", "t-2"), ledger)
    alerts = await redis.xrange(keys.ALERTS)
    assert len(alerts) == 1 and "OVERFILL" in str(alerts[0][1])
    assert await redis.get(keys.halt_entries("BTCUSDT")) is not None
    assert len(repo.fill_docs) == 2


def intent(qty: str = "0.002", created_ts: int = 1) -> OrderIntent:
    return OrderIntent(
        intent_id="i-1",
        market=Market.FUT,
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=D(qty),
        client_order_id="s3-BTCUSDT-1-ab12",
        exec_policy=MarketPolicy(),
        created_ts=created_ts,
    )


async def test_a_resend_is_answered_from_the_repository_and_another_body_is_a_conflict(
    redis: RedisClient,
) -> None:
    # The intake's idempotency over the fake repository (Redis, for the alerts, is real).
    repo = InMemoryOrdersRepository()
    metrics = RouterMetrics()
    publisher = Publisher(redis, clock=ManualClock(0), metrics=metrics)
    resends = Resends(orders=repo, metrics=metrics, publisher=publisher)
    first = intent()
    with pytest.raises(IntakeBusy):  # being accepted elsewhere, not stored yet: retry
        await resends.stored_or_busy(first, "rest")
    await repo.add(
        order(
            first.client_order_id,
            intent=first.model_dump(mode="json"),
            status=S.FILLED,
            filled_qty=D("0.002"),
        )
    )
    same = await resends.stored_or_busy(intent(created_ts=2), "stream")  # re-stamped copy
    assert same.kind is Disposition.DONE and same.response.duplicate
    assert same.response.filled_qty == D("0.002") and same.response.status is S.FILLED
    other = await resends.stored_or_busy(intent(qty="0.003"), "rest")
    assert other.kind is Disposition.CONFLICT and "qty" in (other.response.message or "")
    alerts = await redis.xrange(keys.ALERTS)
    assert len(alerts) == 1 and "IDEMPOTENCY_CONFLICT" in str(alerts[0][1])


async def test_a_bulk_read_returns_every_record_typed_and_in_order(repo: OrdersRepository) -> None:
    # Past BULK_PARSE the records are validated off the event loop: same records, same order.
    n = BULK_PARSE + 50
    for i in range(n):
        assert (await repo.book_fill(fill("c-1-E1", f"t-{i:04d}", ts=n - i))).stored
    got = await repo.fills_of_parent("c-1")
    assert len(got) == n and all(isinstance(f, FillRecord) for f in got)
    assert [f.ts_fill for f in got] == list(range(1, n + 1))
