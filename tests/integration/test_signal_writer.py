"""S3's group commit of `signals` (s3_strategy.adapters.signals.SignalWriter) on a real SQLite
store: batching, per-document errors, a failing store, cancelled callers, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from s3_strategy.adapters.signals import COLLECTION, SignalWriter
from svckit.errors import DuplicateKey, StoreError, StoreUnavailable
from svckit.store.base import Doc
from svckit.store.sqlite import SqliteStore


def sig(i: int | str) -> Doc:
    return {"_key": f"sig-{i}", "signal_id": f"sid-{i}", "symbol": "BTCUSDT", "t0": 1}


class Commits(list[int]):
    """The size of every committed batch, as the writer reports them to its `observe`."""

    def __call__(self, size: int, seconds: float) -> None:
        self.append(size)


class GatedStore(SqliteStore):
    """insert_many waits for `gate` (a batch in flight) and records every batch it gets."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.batches: list[list[str]] = []

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        self.batches.append([d["_key"] for d in docs])
        self.entered.set()
        await self.gate.wait()
        return await super().insert_many(collection, docs)


class FailingStore(SqliteStore):
    failing = True

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        if self.failing and collection == COLLECTION:
            raise StoreUnavailable("signals: disk full")
        return await super().insert_many(collection, docs)


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[GatedStore]:
    store = GatedStore(tmp_path / "gated.sqlite3")
    await store.bootstrap()
    yield store
    await store.close()


async def test_write_with_concurrent_callers_commits_in_fewer_batches_each_readable_on_return(
    sqlite_store: SqliteStore,
) -> None:
    commits = Commits()
    writer = SignalWriter(sqlite_store, observe=commits)
    seen: dict[str, Doc | None] = {}

    async def one(i: int) -> None:
        doc = sig(i)
        await writer.write(doc)
        # readable the moment write returns (nothing else has run in between)
        seen[doc["_key"]] = await sqlite_store.get(COLLECTION, doc["_key"])

    await asyncio.gather(*(one(i) for i in range(20)))
    assert seen == {f"sig-{i}": sig(i) for i in range(20)}
    assert sum(commits) == 20
    assert 1 <= len(commits) < 20
    assert max(commits) > 1
    assert await sqlite_store.count(COLLECTION) == 20


async def test_write_with_lone_caller_commits_at_once(sqlite_store: SqliteStore) -> None:
    commits = Commits()
    writer = SignalWriter(sqlite_store, observe=commits)
    await asyncio.wait_for(writer.write(sig(1)), timeout=2)
    assert await sqlite_store.get(COLLECTION, "sig-1") == sig(1)
    assert commits == [1]


async def test_write_with_batch_in_flight_queues_the_next_batch_up_to_max_batch(
    gated: GatedStore,
) -> None:
    commits = Commits()
    writer = SignalWriter(gated, max_batch=4, observe=commits)
    gated.gate.clear()
    first = asyncio.create_task(writer.write(sig(0)))
    await gated.entered.wait()  # batch [sig-0] in flight
    rest = [asyncio.create_task(writer.write(sig(i))) for i in range(1, 11)]
    await asyncio.sleep(0.01)
    assert not first.done() and not any(t.done() for t in rest)
    gated.gate.set()
    await asyncio.gather(first, *rest)
    assert gated.batches == [
        ["sig-0"],
        ["sig-1", "sig-2", "sig-3", "sig-4"],
        ["sig-5", "sig-6", "sig-7", "sig-8"],
        ["sig-9", "sig-10"],
    ]
    assert commits == [1, 4, 4, 2]
    assert await gated.count(COLLECTION) == 11


async def test_write_with_duplicate_key_fails_only_that_writer(sqlite_store: SqliteStore) -> None:
    await sqlite_store.insert(COLLECTION, sig("taken"))
    commits = Commits()
    writer = SignalWriter(sqlite_store, observe=commits)
    dup_index = {**sig("other"), "signal_id": "sid-1"}  # collides with sig(1) on signal_id
    results = await asyncio.gather(
        writer.write(sig(1)),
        writer.write({**sig("taken"), "t0": 2}),  # collides on _key
        writer.write(sig(2)),
        writer.write(dup_index),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], DuplicateKey)
    assert isinstance(results[3], DuplicateKey)
    assert "ix_signals_signal_id" in str(results[3])
    assert commits == [4]  # one batch, errors per document
    assert await sqlite_store.get(COLLECTION, "sig-taken") == sig("taken")  # untouched
    assert await sqlite_store.get(COLLECTION, "sig-other") is None
    assert await sqlite_store.count(COLLECTION) == 3
    await writer.write(sig(3))  # the writer keeps working
    assert await sqlite_store.get(COLLECTION, "sig-3") == sig(3)


async def test_write_with_store_unavailable_fails_every_waiter_of_the_batch(
    tmp_path: Path,
) -> None:
    store = FailingStore(tmp_path / "failing.sqlite3")
    await store.bootstrap()
    try:
        commits = Commits()
        writer = SignalWriter(store, observe=commits)
        results = await asyncio.gather(
            *(writer.write(sig(i)) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert all("disk full" in str(r) for r in results)
        assert len({id(r) for r in results}) == 5  # one exception object per waiter
        assert commits == []
        assert await store.count(COLLECTION) == 0
        store.failing = False  # the store is back: the next write goes through
        await writer.write(sig(9))
        assert await store.get(COLLECTION, "sig-9") == sig(9)
    finally:
        await store.close()


async def test_write_with_caller_cancelled_while_queued_still_writes_its_doc(
    gated: GatedStore,
) -> None:
    commits = Commits()
    writer = SignalWriter(gated, observe=commits)
    gated.gate.clear()
    blocker = asyncio.create_task(writer.write(sig(0)))
    await gated.entered.wait()
    cancelled = asyncio.create_task(writer.write(sig(1)))
    other = asyncio.create_task(writer.write(sig(2)))
    await asyncio.sleep(0)  # both queued behind the batch in flight
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gated.gate.set()
    await asyncio.gather(blocker, other)
    assert gated.batches == [["sig-0"], ["sig-1", "sig-2"]]
    assert await gated.get(COLLECTION, "sig-1") == sig(1)
    assert sum(commits) == 3


async def test_write_with_caller_cancelled_while_committing_still_writes_its_doc(
    gated: GatedStore,
) -> None:
    commits = Commits()
    writer = SignalWriter(gated, observe=commits)
    gated.gate.clear()
    cancelled = asyncio.create_task(writer.write(sig(1)))
    await gated.entered.wait()  # its batch is in flight
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gated.gate.set()
    await writer.aclose()
    assert await gated.get(COLLECTION, "sig-1") == sig(1)
    assert sum(commits) == 1


async def test_aclose_with_queued_writes_commits_them_and_refuses_new_ones(
    gated: GatedStore,
) -> None:
    commits = Commits()
    writer = SignalWriter(gated, max_batch=2, observe=commits)
    gated.gate.clear()
    in_flight = asyncio.create_task(writer.write(sig(0)))
    await gated.entered.wait()
    queued = [asyncio.create_task(writer.write(sig(i))) for i in range(1, 6)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(writer.aclose())
    await asyncio.sleep(0.01)
    assert not closing.done()  # waits for the queued writes
    with pytest.raises(StoreUnavailable, match="closed"):
        await writer.write(sig(99))
    gated.gate.set()
    await asyncio.wait_for(closing, timeout=5)
    assert all(t.done() and t.exception() is None for t in [in_flight, *queued])
    assert await gated.count(COLLECTION) == 6
    assert await gated.get(COLLECTION, "sig-99") is None
    assert sum(commits) == 6
    with pytest.raises(StoreUnavailable):
        await writer.write(sig(100))


async def test_aclose_with_nothing_queued_returns_and_refuses_writes(
    sqlite_store: SqliteStore,
) -> None:
    writer = SignalWriter(sqlite_store)
    await writer.write(sig(1))
    await asyncio.wait_for(writer.aclose(), timeout=2)
    with pytest.raises(StoreUnavailable):
        await writer.write(sig(2))
    assert await sqlite_store.count(COLLECTION) == 1


async def test_write_with_flusher_cancelled_fails_waiters_with_store_unavailable(
    gated: GatedStore,
) -> None:
    writer = SignalWriter(gated)
    gated.gate.clear()
    in_flight = asyncio.create_task(writer.write(sig(0)))
    await gated.entered.wait()
    queued = asyncio.create_task(writer.write(sig(1)))
    await asyncio.sleep(0)
    flusher = writer._flusher
    assert flusher is not None
    flusher.cancel()  # e.g. the loop shutting down
    results = await asyncio.gather(in_flight, queued, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert all("interrupted" in str(r) for r in results)
    gated.gate.set()
    await writer.write(sig(2))  # a new flusher serves later writes
    assert await gated.get(COLLECTION, "sig-2") == sig(2)
