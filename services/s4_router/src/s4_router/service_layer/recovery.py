"""Resuming stored executions: after a restart, for replicas that died (the orphan sweep), and
for a `/cancel` or a reconciler finding about an order nobody drives here.

A parent is resumed only under a fresh acquisition of its lease and only as it is stored *now*
(a listing may be older than the lease). Its machine is rebuilt from the stored execution state
(`exec_state`); a child the machine allocated whose record never was written gets its record
(SUBMITTED) and is marked unsent: the next step asks the venue for it before any send. A parent
stored without its execution state is never guessed at: a critical `RECOVERY_FAILED` alert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from s4_router.adapters.leases import Lease
from s4_router.domain.order import LIVE
from s4_router.policies.model import Place
from s4_router.policies.parent_machine import ExecState, ParentMachine
from s4_router.service_layer.exec_deps import ExecDeps, child_record
from s4_router.service_layer.execution import Execution
from s4_router.service_layer.manager import ExecutionManager
from s4_router.service_layer.protection import is_protective
from tradekit.enums import OrderRole
from tradekit.ids import parent_of
from tradekit.instrument import Instrument
from tradekit.orders import OrderRecord

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class Recovery:
    d: ExecDeps
    instruments: Mapping[str, Instrument]
    manager: ExecutionManager

    async def load(self, parent: OrderRecord, lease: Lease) -> Execution | None:
        """Rebuild the execution of a stored parent (restart, dead replica), driven under
        `lease` (the caller's acquisition)."""
        coid = parent.client_order_id
        inst = self.instruments.get(parent.symbol)
        if inst is None:
            await self.d.publisher.alert(
                "RECOVERY_FAILED",
                f"{coid}: unknown instrument {parent.symbol}",
                severity="critical",
            )
            return None
        # Protective orders are children too, but the protection service drives them.
        kids = {
            c.client_order_id: c for c in await self.d.orders.children(coid) if not is_protective(c)
        }
        fills = [
            f
            for f in await self.d.orders.fills(parent_client_order_id=coid)
            if f.client_order_id in kids or parent_of(f.client_order_id) is None
        ]
        if parent.exec_state is None:
            # Every intake stores the plan with the parent; without it the execution cannot
            # be rebuilt safely (guessing could send what was sent already): page a human.
            await self.d.publisher.alert(
                "RECOVERY_FAILED",
                f"{coid}: stored without its execution state; not resumed, nothing sent "
                "(check its children at the venue and close it by hand)",
                severity="critical",
                data={"symbol": parent.symbol},
            )
            return None
        unsent: list[str] = []
        state = ExecState.model_validate(parent.exec_state)
        machine = ParentMachine(state, inst=inst, parent_id=coid)
        for sl, c in machine.children():
            if c.id not in kids:
                # Allocated (parent written first) but its record never was: the send comes
                # after the record, so this child never reached the venue.
                post_only = c.role in (OrderRole.MAKER, OrderRole.CHASE)
                place = Place(c.id, c.n, c.role, parent.side, c.qty, c.price, post_only, sl.index)
                kids[c.id] = child_record(
                    parent,
                    place,
                    venue=parent.venue,
                    ts=c.placed_ms,
                    updated_ts=self.d.clock.now_ms(),
                    reason="restored from the parent's execution state",
                )
                await self.d.orders.add(kids[c.id])
                unsent.append(c.id)
        ex = Execution(
            self.d,
            parent=parent,
            children=kids,
            machine=machine,
            inst=inst,
            fills=fills,
            lease=lease,
        )
        ex.unsent.update(unsent)
        return ex

    async def recover(self) -> int:
        """Resume every unfinished parent nobody drives (startup, and periodically for
        replicas that died); returns how many were taken over."""
        taken = 0
        for status in LIVE:
            for p in await self.d.orders.find(status=status.value, parent_client_order_id=None):
                coid = p.client_order_id
                if coid in self.manager.active:
                    continue
                lease = await self.d.leases.acquire(coid)
                if lease is None:
                    continue  # driven by another task or replica
                # The listing is older than the lease: its driver may have finished the order
                # and let go in between. Only the order as stored now is resumed.
                try:
                    fresh = await self.d.orders.get(coid)
                except Exception:
                    await self.d.leases.release(lease)
                    raise
                ex = None
                if fresh is not None and fresh.status in LIVE:
                    try:
                        ex = await self.load(fresh, lease)
                    except Exception:
                        log.exception("%s: could not be resumed", coid)
                if ex is None:
                    await self.d.leases.release(lease)
                    continue
                self.d.metrics.recovered.inc()
                await self.d.publisher.event(
                    "EXEC_RESUMED",
                    client_order_id=coid,
                    symbol=ex.parent.symbol,
                    data={"status": ex.parent.status.value, "children": len(ex.children)},
                )
                await self.manager.adopt(ex, step_now=True)
                taken += 1
        return taken
