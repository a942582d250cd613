"""Runs executions in the background: one asyncio task per parent order this replica owns.

Each task sleeps until the machine's next deadline (maker timeout, TWAP slice, probe delay) or
the next status poll while children are live — or until woken (a venue execution report, a
cancel request) — renews its lease, and steps. Losing the lease stops the task at once: another
driver (a peer replica, or this one's orphan sweep once it had expired) holds it now, and this
task touches neither the order nor the winner's key. A step that fails on infrastructure is
retried with backoff; nothing is lost because every step starts from the persisted state and
the venue's truth.

Tests construct it with `autorun=False` and step the executions by hand (`tests.chaos.rig`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from s4_router.adapters.leases import LeaseLost, Leases
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.execution import Execution
from svckit.clock import Clock
from svckit.logging import bind_log_context
from tradekit.ids import parent_of

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class ExecutionManager:
    leases: Leases
    clock: Clock
    metrics: RouterMetrics
    poll_ms: int = 250
    autorun: bool = True
    active: dict[str, Execution] = field(default_factory=dict, init=False)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _wake: dict[str, asyncio.Event] = field(default_factory=dict, init=False)
    _done: dict[str, asyncio.Event] = field(default_factory=dict, init=False)
    _stopping: bool = field(default=False, init=False)

    async def adopt(self, ex: Execution, *, step_now: bool = False) -> None:
        """Drive `ex` from now on (`step_now`: a resumed execution steps at once; a fresh
        one has just taken its first step inline)."""
        coid = ex.client_order_id
        if ex.finished:
            await self.leases.release(ex.lease)
            return
        self.active[coid] = ex
        self._wake[coid] = asyncio.Event()
        self._done.setdefault(coid, asyncio.Event())
        self.metrics.executions.set(len(self.active))
        if self.autorun and not self._stopping:
            self.tasks[coid] = asyncio.create_task(
                self._run(ex, step_now=step_now), name=f"exec:{coid}"
            )

    def wake(self, client_order_id: str) -> None:
        ev = self._wake.get(client_order_id)
        if ev is not None:
            ev.set()

    def on_order_update(self, child_client_order_id: str) -> None:
        """Venue execution report for one of our children: wake its parent's task."""
        parsed = parent_of(child_client_order_id)
        self.wake(parsed[0] if parsed else child_client_order_id)

    async def wait_done(self, client_order_id: str, timeout_s: float) -> None:
        """Until the execution ends or `timeout_s` passes (its answer then says RUNNING)."""
        ev = self._done.get(client_order_id)
        if ev is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), timeout=timeout_s)

    def delay_s(self, ex: Execution) -> float:
        now = self.clock.now_ms()
        options: list[int] = []
        wake = ex.machine.wakeup_ms()
        if wake is not None:
            options.append(max(0, wake - now))
        if any(not c.status.is_terminal for c in ex.children.values()) or not options:
            options.append(self.poll_ms)
        # Wake often enough to renew the lease, even across a long TWAP gap.
        options.append(max(self.leases.ttl_ms // 3, 1))
        return min(options) / 1000

    async def _run(self, ex: Execution, *, step_now: bool) -> None:
        coid = ex.client_order_id
        # This task's own context: an execution resumed after a restart has no intake to
        # inherit the ids from (signal_id then stays unknown: S4 does not store it).
        bind_log_context(intent_id=ex.parent.intent_id, client_order_id=coid)
        backoff = 0.1
        first = step_now
        try:
            while not ex.finished:
                if not first:
                    ev = self._wake[coid]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ev.wait(), timeout=self.delay_s(ex))
                    ev.clear()
                if self._stopping:
                    return  # between steps: nothing half done, the state is persisted
                first = False
                try:
                    if not await self.leases.renew(ex.lease):
                        log.warning("%s: lease lost; another driver holds it now", coid)
                        return
                    await ex.step()
                    backoff = 0.1
                except LeaseLost:
                    log.warning("%s: lease lost mid-step; another driver holds it now", coid)
                    return
                except Exception:  # not CancelledError (a BaseException): a cancel still stops
                    log.exception("%s: step failed; retrying in %.1fs", coid, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self.forget(coid)
            if ex.finished:
                with contextlib.suppress(Exception):
                    await self.leases.release(ex.lease)

    def forget(self, coid: str) -> None:
        self.active.pop(coid, None)
        self.tasks.pop(coid, None)
        self._wake.pop(coid, None)
        done = self._done.pop(coid, None)
        if done is not None:
            done.set()
        self.metrics.executions.set(len(self.active))

    def begin_shutdown(self) -> None:
        """No new task; every task stops at its next idle point (a step under way finishes)."""
        self._stopping = True
        for ev in self._wake.values():
            ev.set()

    async def shutdown(self, grace_s: float = 0.0) -> None:
        """Stop driving (process exit). A step under way finishes first (within `grace_s`):
        cancelled midway it could lose the events it has not published yet, while Redis is
        still up to take them; idle tasks stop at once. Leases are released so a peer or the
        next start resumes at once instead of after the lease TTL."""
        self.begin_shutdown()
        owned = dict(self.active)  # tasks forget theirs when they end; leases still go
        tasks = list(self.tasks.values())
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for coid, ex in {**owned, **self.active}.items():
            self.forget(coid)
            with contextlib.suppress(Exception):
                await self.leases.release(ex.lease)
