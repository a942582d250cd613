"""The SQLite store never blocks the event loop (issue 12 point 7): a write that waits for
another connection's write lock (another replica or service on the same file) waits on the
store's writer thread, so unrelated coroutines keep running and reads are still answered; a
cancelled caller's write still lands (as when the call ran on the loop); close() finishes the
queued writes and then refuses new calls."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from svckit.errors import StoreUnavailable
from svckit.store.sqlite import SqliteStore

HOLD_S = 1.0
# A frozen loop would show a gap of HOLD_S. The bound leaves room for a loaded 2-core test
# machine's scheduling jitter while staying far below the freeze it guards against.
MAX_GAP_S = 0.1


@contextmanager
def write_lock_held(path: Path, seconds: float) -> Iterator[None]:
    """Another connection (as another process would) takes the write lock and releases it after
    `seconds`, from a timer thread."""
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        blocker.rollback()
        released.set()

    timer = threading.Timer(seconds, release)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        released.wait()
        blocker.close()


class GapMeter:
    """Ticks every 5 ms; `max_gap` is the longest the loop kept it from running."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    async def __aenter__(self) -> GapMeter:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.02)  # ticking before the store call starts
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        await asyncio.sleep(0.02)  # one more tick: it records a gap that ended just now
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def order(coid: str) -> dict[str, str]:
    return {"_key": coid, "client_order_id": coid, "symbol": "BTCUSDT", "status": "NEW"}


async def test_write_waiting_for_another_connections_lock_does_not_stall_the_loop(
    sqlite_store: SqliteStore,
) -> None:
    with write_lock_held(sqlite_store.path, HOLD_S):
        async with GapMeter() as meter:
            t0 = time.perf_counter()
            key = await sqlite_store.insert("orders", order("c-1"))
            waited = time.perf_counter() - t0
    assert key == "c-1"
    assert waited >= HOLD_S * 0.8  # it did wait for the lock...
    assert meter.max_gap < MAX_GAP_S  # ...without holding the loop meanwhile
    assert await sqlite_store.get("orders", "c-1") is not None


async def test_update_waiting_for_the_lock_does_not_stall_the_loop(
    sqlite_store: SqliteStore,
) -> None:
    await sqlite_store.insert("orders", order("c-2"))
    with write_lock_held(sqlite_store.path, HOLD_S):
        async with GapMeter() as meter:
            doc = await sqlite_store.update("orders", "c-2", {"status": "FILLED"})
    assert doc["status"] == "FILLED"
    assert meter.max_gap < MAX_GAP_S


async def test_reads_are_answered_while_a_write_waits_for_the_lock(
    sqlite_store: SqliteStore,
) -> None:
    await sqlite_store.insert("orders", order("c-3"))
    with write_lock_held(sqlite_store.path, HOLD_S):
        write = asyncio.create_task(sqlite_store.insert("orders", order("c-4")))
        await asyncio.sleep(0.05)  # the write is now waiting for the lock
        t0 = time.perf_counter()
        got = await sqlite_store.get("orders", "c-3")
        found = await sqlite_store.find("orders")
        n = await sqlite_store.count("orders")
        ping = await sqlite_store.ping()
        read_s = time.perf_counter() - t0
        assert not write.done()
    assert await write == "c-4"
    assert got is not None and got["status"] == "NEW"
    assert [d["_key"] for d in found] == ["c-3"] and n == 1  # the waiting write is not visible
    assert ping is True
    assert read_s < MAX_GAP_S


async def test_write_of_a_cancelled_caller_still_lands(sqlite_store: SqliteStore) -> None:
    with write_lock_held(sqlite_store.path, 0.3):
        task = asyncio.create_task(sqlite_store.insert("orders", order("c-5")))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for _ in range(100):  # the writer thread finishes it once the lock is released
        if await sqlite_store.get("orders", "c-5") is not None:
            break
        await asyncio.sleep(0.01)
    assert await sqlite_store.get("orders", "c-5") is not None


async def test_close_finishes_queued_writes_then_refuses_calls(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    await store.bootstrap()
    writes = [asyncio.create_task(store.insert("orders", order(f"q-{i}"))) for i in range(50)]
    await asyncio.sleep(0)  # every insert is queued on the writer thread
    await store.close()
    assert [await w for w in writes] == [f"q-{i}" for i in range(50)]
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.insert("orders", order("late"))
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get("orders", "q-0")
    assert await store.ping() is False
    await store.close()  # idempotent
    reopened = SqliteStore(path)
    assert await reopened.count("orders") == 50
    await reopened.close()


async def test_concurrent_updates_of_one_document_each_keep_their_field(
    sqlite_store: SqliteStore,
) -> None:
    """read-merge-write runs whole on the writer thread: no update loses another's field."""
    await sqlite_store.insert("orders", order("c-6"))
    await asyncio.gather(
        *(sqlite_store.update("orders", "c-6", {f"f{i}": i}) for i in range(40)),
        *(sqlite_store.get("orders", "c-6") for _ in range(40)),
    )
    doc = await sqlite_store.get("orders", "c-6")
    assert doc is not None
    assert all(doc[f"f{i}"] == i for i in range(40))
