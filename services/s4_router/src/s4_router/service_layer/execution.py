"""One parent order being executed: drives its policy machine against the venue and persists
every step.

A step: (1) ask the venue about every live child (resolving never-acknowledged ones by client
order id, re-sending the *same* id only when the venue has no trace of it); (2) pick up a
cancel request; (3) let the machine act on time and, when it wants to place, a fresh book;
(4) persist the parent (machine state, aggregates, status). Then the manager sleeps until the
machine's next deadline or the next poll.

Order of writes around a send (what makes a restart safe):
  parent.exec_state (child n allocated) → child record SUBMITTED → venue request → child ack.
A crash anywhere leaves a SUBMITTED/AMBIGUOUS child, which the next owner resolves from the
venue before anything else is sent. `lock:pos:{symbol}` is held only around one venue request
(a send attempt or a cancel attempt), never across a back-off, a retry or a maker wait.

One driver: the execution carries its lease (one acquisition of `exec:lease:{id}`); every send
attempt renews it first and stops (`LeaseLost`) when someone else holds it. The children's side
(place, send, poll, resolve, cancel, apply the venue's answers, book fills) is
:class:`~s4_router.service_layer.child_orders.ChildOrders`, this class's base (its constructor
holds the whole state); every record is written through the orders repository.

Fills are booked through the one `FillBook`; the parent's `filled_qty` is the sum of its stored
fills at every write. The outcome (`orders:executed`, `EXEC_DONE`) is published once per parent.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from s4_router.adapters.exchange.base import RetryableError
from s4_router.adapters.exchange.weight import urgent_lane
from s4_router.domain.fills import FillLedger
from s4_router.domain.order import can_transition
from s4_router.policies.model import Book, Cancel, ChildReport, Command, Note, Place
from s4_router.service_layer.child_orders import ChildOrders
from tradekit.enums import OrderStatus
from tradekit.events import OrderExecuted
from tradekit.money import ZERO
from tradekit.orders import StateChange

log = logging.getLogger(__name__)

MAX_LOOPS = 16
FILLS_CATCH_UP_STEPS = 10
S = OrderStatus
# What a step changes on a stored parent record (the rest is written once, at insert).
PARENT_FIELDS = frozenset(
    {"status", "history", "updated_ts", "message", "filled_qty", "avg_price", "fee", "exec_state"}
)


class Execution(ChildOrders):
    # ---- driving ------------------------------------------------------------------------------
    async def step(self) -> bool:
        """One step; True once the parent is finished (terminal and reported)."""
        async with self._lock:
            if self.finished:
                return True
            try:
                await self._step()
            finally:
                await self._flush_events()
            hook = self.d.on_progress
            if hook is not None and (self.parent.filled_qty > 0 or self.finished):
                p = self.parent
                await hook(
                    p.client_order_id,
                    filled=p.filled_qty,
                    avg_price=p.avg_price,
                    done=self.finished,
                )
            return self.finished

    async def _step(self) -> None:
        # Order matters: venue news first, then the cancel flag, then anything new is placed.
        # A child cancelled by another replica's /cancel reads as "maker ended" to the machine,
        # but the placement that would follow only happens below, after the flag is seen.
        await self._save_dirty()
        await self._refresh()
        m = self.machine
        check = self._check_cancel_flag
        self._check_cancel_flag = True
        if not m.s.cancel_requested and (
            self.cancel_local
            or (check and await self.d.orders.cancel_requested(self.client_order_id))
        ):
            await self._run(m.on_cancel_request(self.d.clock.now_ms()))
        for _ in range(MAX_LOOPS):
            now = self.d.clock.now_ms()
            if self.overfilled and not m.s.cancel_requested:
                await self._run(m.on_cancel_request(now))  # stop buying (FillBook alerted)
                continue
            book: Book | None = None
            if m.wants_book(now):
                raw = self._initial_book or await self.d.books.book(
                    self.parent.market, self.parent.symbol, allow_stale=self.parent.reduce_only
                )
                self._initial_book = None
                self._last_book = raw
                book = Book(ts=raw.ts, bids=raw.bids, asks=raw.asks)
            cmds = m.advance(now, book)
            if not cmds:
                break
            await self._run(cmds)
        if m.done and await self._fills_complete():
            await self._finalize()
        else:
            await self._persist_parent()

    async def _refresh(self) -> None:
        """Ask the venue about every live child and tell the machine."""
        for child in list(self.children.values()):
            if child.status.is_terminal:
                continue
            report = await self._poll(child)
            if report is not None:
                await self._run(self.machine.on_report(self.d.clock.now_ms(), report))
        # A child whose record is already final while the machine still waits on it (a crash
        # between the child's write and the parent's): the record holds the venue's last word,
        # and no poll would ever come for it.
        for _, c in self.machine.children():
            rec = self.children.get(c.id)
            if rec is not None and rec.status.is_terminal and not c.status.is_terminal:
                report = ChildReport(c.id, rec.status, rec.filled_qty, message=rec.message)
                await self._run(self.machine.on_report(self.d.clock.now_ms(), report))

    async def _run(self, cmds: list[Command]) -> None:
        now = self.d.clock.now_ms()
        for c in cmds:
            if isinstance(c, Note):
                await self._note(c)
            elif isinstance(c, Place):
                report = await self._place(c)
                if report is not None:
                    await self._run(self.machine.on_report(self.d.clock.now_ms(), report))
            elif isinstance(c, Cancel):
                report = await self._cancel(c.child_id)
                if report is not None:
                    await self._run(self.machine.on_report(now, report))

    async def _note(self, note: Note) -> None:
        self.events.append(note)
        now = self.d.clock.now_ms()
        if note.event in ("DOWNSIZE", "INSUFFICIENT_BALANCE_REPEATED"):
            repeated = note.event != "DOWNSIZE"
            await self.d.quality.insufficient_balance(
                now, symbol=self.parent.symbol, repeated=repeated
            )
        elif note.event == "SLICE_DONE" and len(self.machine.s.slices) > 1:
            self.d.quality.slice_done(
                target=Decimal(str(note.data["target"])), filled=Decimal(str(note.data["filled"]))
            )

    async def _flush_events(self) -> None:
        events, self.events = self.events, []
        done = [ev for ev in events if ev.event == "EXEC_DONE"]
        events = [ev for ev in events if ev.event != "EXEC_DONE"]
        for ev in done:
            await self.d.publisher.event(
                ev.event,
                client_order_id=self.client_order_id,
                symbol=self.parent.symbol,
                data=ev.data,
                once=True,
            )
        if events:
            await self.d.publisher.events(
                [(ev.event, ev.data) for ev in events],
                client_order_id=self.client_order_id,
                symbol=self.parent.symbol,
            )

    async def _fills_complete(self) -> bool:
        """Every venue-reported fill is booked (else fetch trades; give up loudly after a few
        steps rather than never reporting the order)."""
        short = [
            c
            for c in self.children.values()
            if self.ledgers.get(c.client_order_id, FillLedger(c.qty)).filled < c.filled_qty
        ]
        for c in short:
            try:
                with urgent_lane():  # watching what is already out
                    trades = await self.d.ops.trades_of(
                        c.market, c.symbol, client_order_id=c.client_order_id, since_ms=c.created_ts
                    )
            except RetryableError:
                continue
            for t in trades:
                await self._book_fill(c, t)
        short = [c for c in short if self.ledgers[c.client_order_id].filled < c.filled_qty]
        if not short:
            return True
        self._fills_wait += 1
        if self._fills_wait >= FILLS_CATCH_UP_STEPS:
            await self.d.publisher.alert(
                "FILLS_INCOMPLETE",
                f"{self.client_order_id}: venue reports more filled than trades found for "
                f"{[c.client_order_id for c in short]}",
                severity="critical",
                data={"symbol": self.parent.symbol},
            )
            return True
        return False

    # ---- the parent ----------------------------------------------------------------------
    def _aggregates(self) -> None:
        """The parent's figures are those of its stored fills (never the venue's totals, which
        may run ahead of the fills booked so far)."""
        p = self.parent
        filled = self.parent_ledger.filled
        p.filled_qty = filled
        p.avg_price = self.fill_notional / filled if filled > 0 else None
        p.fee = sum(self.fees.values(), ZERO)

    def _live_status(self) -> OrderStatus:
        if self.machine.s.cancel_requested:
            return S.PENDING_CANCEL
        if self.parent.filled_qty > 0:
            return S.PARTIALLY_FILLED
        if any(c.ts_ack is not None and c.status is not S.REJECTED for c in self.children.values()):
            return S.ACCEPTED
        if self.children:
            return S.SUBMITTED
        return S.NEW

    def _move_parent(self, target: OrderStatus, reason: str | None = None) -> None:
        p = self.parent
        cur = p.status
        if cur == target or cur.is_terminal:
            return
        if cur is S.PENDING_CANCEL and not target.is_terminal:
            return
        if cur is S.ACCEPTED and target is S.SUBMITTED:
            return
        path = [target]
        if not can_transition(cur, target):
            if can_transition(cur, S.SUBMITTED) and can_transition(S.SUBMITTED, target):
                path = [S.SUBMITTED, target]
            elif target is S.REJECTED and can_transition(cur, S.EXPIRED):
                path = [S.EXPIRED]  # rejected after something was live: the parent expired
            else:
                log.warning("%s: parent %s -> %s skipped", p.client_order_id, cur, target)
                return
        now = self.d.clock.now_ms()
        for st in path:
            p.history.append(
                StateChange(status=st, ts=now, reason=reason if st is target else None)
            )
            p.status = st

    async def persist(self) -> None:
        async with self._lock:
            await self._persist_parent()

    async def _persist_parent(self) -> None:
        self._aggregates()
        self._move_parent(self._live_status())
        p = self.parent
        p.exec_state = self.machine.s.model_dump(mode="json")
        p.updated_ts = self.d.clock.now_ms()
        await self._write_parent()

    async def _write_parent(self) -> None:
        p = self.parent
        if not self.stored:
            # DuplicateKey here means another replica stored this intent first: the caller
            # answers with the existing order (nothing was sent by us).
            await self.d.orders.add(p)
            self.stored = True
            return
        await self.d.orders.save(p, PARENT_FIELDS)

    async def _finalize(self) -> None:
        m = self.machine
        assert m.s.result is not None
        self._aggregates()
        p = self.parent
        p.message = m.s.message
        p.exec_state = m.s.model_dump(mode="json")
        target = m.s.result
        self._move_parent(target, m.s.message)
        if not self.stored:
            await self._write_parent()
        # Fills are in the store; report before marking terminal so a crash in between
        # re-reports (at least once) instead of never reporting.
        await self.d.publisher.executed(
            OrderExecuted(
                **p.model_dump(include=set(OrderExecuted.model_fields)),  # the parent's figures
                fills=self.fills_booked,
                ts=self.d.clock.now_ms(),
                policy=m.s.config.policy,
            )
        )
        p.updated_ts = self.d.clock.now_ms()
        await self._write_parent()
        self.finished = True
