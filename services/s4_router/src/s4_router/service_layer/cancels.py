"""`POST /cancel`: a parent's execution is cancelled by its driver, wherever that runs.

The request is made durable first (`cancel_requested` on the parent's record): from then on the
order's driver — here, or on the replica holding its lease — completes it, whatever happens to
this request, and the answer says so (202) rather than a 503 that reads as "nothing happened".
An order nobody drives is resumed here (under a fresh lease) to be cancelled; one driven by a
peer also gets its live children cancelled at the venue directly (a cancel is always safe).
Always allowed, whatever the breaker says; protective orders outlive a cancelled entry's fills.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from s4_router.adapters.exchange.base import (
    DefinitiveError,
    ExchangeError,
    OrderNotFound,
    RetryableError,
)
from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.service_layer.exec_deps import ExecDeps
from s4_router.service_layer.manager import ExecutionManager
from s4_router.service_layer.protection import is_protective
from s4_router.service_layer.recovery import Recovery
from svckit.errors import InfraError
from tradekit.enums import OrderStatus
from tradekit.ids import parent_of
from tradekit.orders import OrderRecord

log = logging.getLogger(__name__)

S = OrderStatus


@dataclass(slots=True)
class CancelProgress:
    """How far a cancel got (read by the API at its deadline): `recorded` once it is durable."""

    recorded: bool = False
    client_order_id: str | None = None


@dataclass(kw_only=True, eq=False)
class Cancels:
    d: ExecDeps
    recovery: Recovery
    manager: ExecutionManager
    sync_wait_ms: int

    async def cancel(
        self,
        *,
        client_order_id: str | None = None,
        order_id: str | None = None,
        progress: CancelProgress | None = None,
    ) -> Outcome:
        """Cancel a parent's execution (a child id or venue order id names its parent): no new
        child is sent, live children are cancelled, the parent ends CANCELED (or FILLED if the
        venue filled it first)."""
        if client_order_id:
            order = await self.d.orders.get(client_order_id)
            if order is None:
                message = f"unknown order {client_order_id!r}"
                return Outcome.of(Disposition.UNKNOWN, None, message=message)
        else:
            # A venue order id counts only if S4 placed that order (it is in S4's store), and
            # only if it names one order: venues number orders per symbol/market, so the same
            # id may belong to two. It is never forwarded to the venue as such.
            found = await self.d.orders.find(venue_order_id=order_id, limit=2)
            if not found:
                message = f"unknown order {order_id!r}: not placed by this router"
                return Outcome.of(Disposition.UNKNOWN, None, message=message)
            if len(found) > 1:
                message = (
                    f"venue order id {order_id!r} names several orders; cancel by client_order_id"
                )
                return Outcome.of(Disposition.CONFLICT, None, message=message)
            order = found[0]
        if order.parent_client_order_id:
            order = await self.d.orders.get(order.parent_client_order_id) or order
        coid = order.client_order_id
        if order.status.is_terminal:
            message = f"order already {order.status.value}"
            return Outcome.of(Disposition.CONFLICT, coid, status=order.status, message=message)
        progress = progress or CancelProgress()
        progress.client_order_id = coid
        await self.d.orders.patch(
            coid, {"cancel_requested": True, "updated_ts": self.d.clock.now_ms()}
        )
        progress.recorded = True
        await self.d.publisher.event(
            "CANCEL_REQUESTED", client_order_id=coid, symbol=order.symbol, data={}
        )
        try:
            return await self._apply(order)
        except (InfraError, ExchangeError) as exc:
            # The request is durable: the execution (here or on a peer) completes it. Say so,
            # rather than a 503 that reads as "nothing happened".
            log.warning("%s: cancel recorded, completion deferred: %s", coid, exc)
            return cancel_recorded(
                coid, f"cancel recorded; completing it in the background ({exc})"
            )

    async def _apply(self, order: OrderRecord) -> Outcome:
        coid = order.client_order_id
        ex = self.manager.active.get(coid)
        if ex is None:
            lease = await self.d.leases.acquire(coid)
            if lease is not None:
                ex = await self.recovery.load(await self.d.orders.get(coid) or order, lease)
                if ex is not None:
                    await self.manager.adopt(ex, step_now=True)
                else:
                    await self.d.leases.release(lease)
        if ex is not None:
            ex.cancel_local = True
            await ex.step()
            if ex.finished:
                self.manager.wake(coid)
            elif self.manager.autorun and self.sync_wait_ms:
                self.manager.wake(coid)
                await self.manager.wait_done(coid, self.sync_wait_ms / 1000)
            return Outcome.of(
                Disposition.DONE if ex.finished else Disposition.RUNNING,
                coid,
                ok=True,
                order_ids=[coid, *sorted(ex.children, key=child_n)],
                status=ex.parent.status,
                filled_qty=ex.parent.filled_qty,
                message=None if ex.finished else "cancel in progress: waiting for the venue",
            )
        # Driven by another replica: it sees the flag on its next step. Cancel live children
        # at the venue now as well (a cancel is always safe; the owner reads the flag first).
        cancelled = await self._cancel_children_direct(coid)
        return Outcome.of(
            Disposition.RUNNING,
            coid,
            ok=True,
            order_ids=[coid, *cancelled],
            status=S.PENDING_CANCEL,
            message="cancel requested; the replica executing it completes the cancel",
        )

    async def _cancel_children_direct(self, coid: str) -> list[str]:
        out: list[str] = []
        for child in await self.d.orders.find(parent_client_order_id=coid):
            if is_protective(child) or child.status.is_terminal:
                continue  # protection outlives a cancelled entry's fills
            try:
                res = await self.d.ops.cancel(child.market, child.symbol, child.client_order_id)
            except (RetryableError, DefinitiveError, OrderNotFound) as exc:
                log.info("%s: direct cancel failed: %s", child.client_order_id, exc)
                continue
            if res is not None:
                out.append(child.client_order_id)
        return out


def cancel_recorded(coid: str, message: str) -> Outcome:
    """RUNNING (202): the cancel request is stored; the order's driver completes it."""
    return Outcome.of(Disposition.RUNNING, coid, ok=True, status=S.PENDING_CANCEL, message=message)


def child_n(cid: str) -> int:
    """A child's number (`{parent}-E{n}`; 0 for a parent): children sort by it."""
    parsed = parent_of(cid)
    return parsed[1] if parsed else 0
