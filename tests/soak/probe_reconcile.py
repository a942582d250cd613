"""What S4's reconciler costs under steady flow: S4's app in-process (embedded Redis, SQLite, the
default simulator), MARKET orders at a fixed rate, the reconciler every `--interval-ms`.

    python -m tests.soak.probe_reconcile --rate 10 --seconds 120 [--interval-ms 1000]

Prints, per run of the reconciler: its time, the peak of the Python memory it allocated
(tracemalloc, only while the run lasts), the orders it read and the reads of a symbol's whole
fill history; at the end, the runs, the POSITION_MISMATCH findings (under steady flow with a
consistent venue and store there should be none) and S4's RSS. This is how the soak's S4
growth was traced to the reconciler: each run used to read the whole window and every fill of
the symbols' history, so its peak grew with every order S4 had executed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from s4_router.adapters.orders_repo import StoreOrdersRepository
from s4_router.service_layer.reconciler import Reconciler, RunReport
from svckit.store.base import DocumentStore
from tests.soak.probe_s4 import _self_rss, s4_in_process, send
from tradekit.orders import FillRecord, OrderRecord


class _CountingRepo(StoreOrdersRepository):
    """The store's repository, counting the orders the reconciler reads and its reads of a
    symbol's whole fill history."""

    def __init__(self, store: DocumentStore) -> None:
        super().__init__(store)
        self.history_reads = 0
        self.orders_read = 0

    async def fills(self, *, sort: Any = None, **where: Any) -> list[FillRecord]:
        self.history_reads += "symbol" in where
        return await super().fills(sort=sort, **where)

    async def find(
        self, *, sort: Any = None, limit: int | None = None, **where: Any
    ) -> list[OrderRecord]:
        got = await super().find(sort=sort, limit=limit, **where)
        if sort == ("updated_ts", "desc"):  # the window's pages of recently updated orders
            self.orders_read += len(got)
        return got


class _Traced:
    """One reconciler's runs: each timed, its Python allocations traced while it lasts."""

    def __init__(self, rec: Reconciler, store: DocumentStore) -> None:
        self.repo = _CountingRepo(store)
        rec.orders = self.repo
        self.runs = 0
        self.mismatches = 0
        self._run_once = rec.run_once
        setattr(rec, "run_once", self.run_once)  # noqa: B010 - the periodic task calls it

    async def run_once(self) -> RunReport:
        history, orders = self.repo.history_reads, self.repo.orders_read
        tracemalloc.start(1)
        t0 = time.perf_counter()
        try:
            report = await self._run_once()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        self.runs += 1
        found = sum(f.kind.value == "POSITION_MISMATCH" for f in report.findings)
        self.mismatches += found
        print(
            f"run {self.runs:3d}: {1000 * (time.perf_counter() - t0):6.0f} ms, peak "
            f"{peak / 2**20:5.1f} MB, orders read {self.repo.orders_read - orders:5d}, "
            f"history reads {self.repo.history_reads - history}, findings {len(report.findings)}",
            flush=True,
        )
        return report


async def probe(args: argparse.Namespace) -> None:
    async with s4_in_process(
        Path(tempfile.mkdtemp(prefix="probe-rec-")),
        reconcile_interval_ms=args.interval_ms,
        log_level="CRITICAL",
    ) as (app, cl, r):
        reconciler = app.state.container.reconciler
        assert reconciler is not None
        traced = _Traced(reconciler, app.state.container.store)
        sent, t0 = 0, time.monotonic()
        for sec in range(args.seconds):
            await send(cl, r, "rest", sent, args.rate)
            sent += args.rate
            await asyncio.sleep(max(0.0, t0 + sec + 1 - time.monotonic()))
        print(
            f"{sent} orders in {time.monotonic() - t0:.0f} s: {traced.runs} runs, "
            f"POSITION_MISMATCH {traced.mismatches}, history reads "
            f"{traced.repo.history_reads}, RSS {_self_rss():.1f} MB"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rate", type=int, default=10, help="MARKET orders per second")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--interval-ms", type=int, default=30_000, help="S4_RECONCILE_INTERVAL_MS")
    asyncio.run(probe(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
