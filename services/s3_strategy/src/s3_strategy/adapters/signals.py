"""Group commit of `signals`: every decision is persisted before it is answered or published,
without paying one store transaction per decision.

`write(doc)` queues the document and waits until the batch holding it is committed
(`DocumentStore.insert_many`: one multi-row statement on SQLite's writer thread, one HTTP
request on ArangoDB). While a batch is being written the next one fills, so under load a
commit carries every decision that arrived meanwhile, and a lone decision is written at once
(no timer, no added latency). The guarantee per decision is unchanged: `write` returns only
after its own document is stored and raises the error that document hit otherwise
(DuplicateKey or InvalidDocument for it alone, StoreUnavailable for the batch); the caller
undoes its claims and answers 503, exactly as with a single insert.

One document never fails another's write: a batch that fails with anything but the store being
unavailable (an adapter that cannot serialise one document, say) is retried one document at a
time, so only the culprit's caller sees the error.

A caller cancelled while waiting does not cancel the write: the decision is still recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from svckit.errors import StoreUnavailable
from svckit.store.base import Doc, DocumentStore

log = logging.getLogger(__name__)

COLLECTION = "signals"


@dataclass(eq=False)
class SignalWriter:
    store: DocumentStore
    _: KW_ONLY
    max_batch: int = 256
    observe: Callable[[int, float], None] | None = None  # (batch size, commit seconds) per batch
    _pending: list[tuple[Doc, asyncio.Future[None]]] = field(default_factory=list, init=False)
    _flusher: asyncio.Task[None] | None = field(default=None, init=False)
    _closed: bool = field(default=False, init=False)

    async def write(self, doc: Doc) -> None:
        if self._closed:
            raise StoreUnavailable("signal writer is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((doc, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="signals-group-commit")
        # A cancelled caller cancels only its future: the document stays in the batch.
        await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._commit(batch)
        finally:
            self._flusher = None
            # only when interrupted (the loop above ends with nothing pending otherwise)
            stranded, self._pending = self._pending, []
            for _, fut in stranded:
                if not fut.done():
                    fut.set_exception(StoreUnavailable("signal write interrupted (shutdown)"))

    async def _commit(self, batch: list[tuple[Doc, asyncio.Future[None]]]) -> None:
        t0 = time.perf_counter()
        try:
            results = await self.store.insert_many(COLLECTION, [doc for doc, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
                for one in batch:  # isolate the culprit: every other document is written
                    await self._commit([one])
                return
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(_copy(exc))
            return
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(_copy(exc))
            raise
        if self.observe is not None:
            self.observe(len(batch), time.perf_counter() - t0)
        for (_, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(None)

    async def aclose(self) -> None:
        """Refuse new writes and wait for the queued ones to be committed."""
        self._closed = True
        flusher = self._flusher
        if flusher is not None:
            await asyncio.shield(flusher)


def _copy(exc: BaseException) -> BaseException:
    """One exception object per waiter: raising the same instance from many tasks chains their
    tracebacks into each other."""
    if isinstance(exc, asyncio.CancelledError):
        return StoreUnavailable("signal write interrupted (shutdown)")
    try:
        clone = type(exc)(*exc.args)
    except Exception:
        return StoreUnavailable(f"signal write failed: {type(exc).__name__}: {exc}")
    clone.__cause__ = exc
    return clone
