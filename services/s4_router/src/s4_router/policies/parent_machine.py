"""The execution of one parent order: a sequence of slices, each a Maker→Taker run.

Every policy is this one machine with different settings:

* MARKET — one slice, `maker_wait_ms = 0` (taker only);
* MAKER_TAKER — one slice with a maker phase (or several when the intent or the route table
  asks for TWAP);
* TWAP — `slices` slices, `gap_ms` apart (± jitter), each market or Maker→Taker. A slice that
  starts late (after a restart, or behind a slow slice) pushes the rest back by as much, so
  the slices never bunch up: `gap_ms` holds between every two of them.

Slices run one at a time. What a slice leaves unfilled (taker attempts exhausted, remainder too
small to trade) rolls into the next slice so the parent still aims at its quantity; a definitive
reject or a cancel request ends the parent. The whole state is one JSON document
(`ExecState`), persisted by the caller after every step: on restart the machine continues from
it — a finished slice is never run again, a pending one never skipped, and child numbers keep
counting from `next_n`.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from s4_router.policies.maker_taker import ChildState, MakerTaker, MakerTakerConfig, SliceState
from s4_router.policies.model import Book, ChildReport, Command, Note
from s4_router.policies.twap import TwapPlan, schedule, split_quantity
from tradekit.enums import OrderStatus, Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO

PolicyName = Literal["MARKET", "MAKER_TAKER", "TWAP"]


class ExecutionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PolicyName
    maker: MakerTakerConfig
    twap: TwapPlan | None = None
    route_band: int | None = None


class SliceStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    DONE = "DONE"
    SKIPPED = "SKIPPED"


class SlicePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    qty: Decimal
    due_ms: int
    status: SliceStatus = SliceStatus.PENDING
    state: SliceState | None = None

    @property
    def filled(self) -> Decimal:
        return self.state.filled if self.state is not None else ZERO


class ExecState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    config: ExecutionConfig
    side: Side
    qty: Decimal
    reduce_only: bool = False
    next_n: int = 1
    slices: list[SlicePlan] = Field(default_factory=list)
    cancel_requested: bool = False
    downsized: bool = False
    result: OrderStatus | None = None
    message: str | None = None


class ParentMachine:
    def __init__(self, state: ExecState, *, inst: Instrument, parent_id: str) -> None:
        self.s = state
        self.inst = inst
        self.parent_id = parent_id

    @classmethod
    def plan(
        cls,
        *,
        parent_id: str,
        side: Side,
        qty: Decimal,
        reduce_only: bool,
        config: ExecutionConfig,
        inst: Instrument,
        now: int,
        ref_price: Decimal,
    ) -> ParentMachine:
        twap = config.twap
        if twap is not None and twap.slices > 1:
            qtys = split_quantity(qty, twap.slices, inst, ref_price)
            dues = schedule(
                start_ms=now,
                slices=len(qtys),
                gap_ms=twap.gap_ms,
                jitter_pct=twap.jitter_pct,
                seed=parent_id,
            )
        else:
            qtys, dues = [qty], [now]
        slices = [
            SlicePlan(index=i, qty=q, due_ms=d)
            for i, (q, d) in enumerate(zip(qtys, dues, strict=True))
        ]
        state = ExecState(config=config, side=side, qty=qty, reduce_only=reduce_only, slices=slices)
        return cls(state, inst=inst, parent_id=parent_id)

    # ---- queries ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.s.result is not None

    @property
    def filled(self) -> Decimal:
        return sum((sl.filled for sl in self.s.slices), ZERO)

    def active(self) -> SlicePlan | None:
        return next((sl for sl in self.s.slices if sl.status is SliceStatus.ACTIVE), None)

    def next_pending(self) -> SlicePlan | None:
        return next((sl for sl in self.s.slices if sl.status is SliceStatus.PENDING), None)

    def children(self) -> list[tuple[SlicePlan, ChildState]]:
        return [(sl, c) for sl in self.s.slices if sl.state for c in sl.state.children]

    def wants_book(self, now: int) -> bool:
        if self.done:
            return False
        act = self.active()
        if act is not None:
            return self._machine(act).wants_book(now)
        nxt = self.next_pending()
        return nxt is not None and now >= nxt.due_ms and not self.s.cancel_requested

    def wakeup_ms(self) -> int | None:
        if self.done:
            return None
        act = self.active()
        if act is not None:
            return self._machine(act).wakeup_ms()
        nxt = self.next_pending()
        return nxt.due_ms if nxt is not None else 0

    # ---- events -------------------------------------------------------------------------------
    def advance(self, now: int, book: Book | None) -> list[Command]:
        if self.done:
            return []
        out: list[Command] = []
        act = self.active()
        if act is not None:
            m = self._machine(act)
            out += m.advance(now, book)
            out += self._settle(act, m)
            return out
        nxt = self.next_pending()
        if nxt is None:
            return self._finish()
        if now < nxt.due_ms or book is None:
            return []
        nxt.status = SliceStatus.ACTIVE
        out += self._keep_gap(nxt, now)
        nxt.state = MakerTaker.start(target=nxt.qty, index=nxt.index, cfg=self.s.config.maker)
        m = self._machine(nxt)
        if len(self.s.slices) > 1:
            out.append(
                Note(
                    "SLICE_START",
                    {
                        "slice": nxt.index,
                        "qty": str(nxt.qty),
                        "due_ms": nxt.due_ms,
                        "late_ms": now - nxt.due_ms,
                    },
                )
            )
        out += m.advance(now, book)
        out += self._settle(nxt, m)
        return out

    def on_report(self, now: int, r: ChildReport) -> list[Command]:
        sl = next((sl for sl, c in self.children() if c.id == r.child_id), None)
        if sl is None:
            return []
        m = self._machine(sl)
        out = m.on_report(now, r)
        if sl.status is SliceStatus.ACTIVE:
            out += self._settle(sl, m)
        return out

    def on_cancel_request(self, now: int) -> list[Command]:
        if self.done or self.s.cancel_requested:
            return []
        self.s.cancel_requested = True
        for sl in self.s.slices:
            if sl.status is SliceStatus.PENDING:
                sl.status = SliceStatus.SKIPPED
        act = self.active()
        if act is None:
            return self._finish()
        m = self._machine(act)
        out = m.on_cancel_request(now)
        return out + self._settle(act, m)

    # ---- internals ----------------------------------------------------------------------------
    def _keep_gap(self, started: SlicePlan, now: int) -> list[Command]:
        """A slice starting late pushes the rest of the schedule back by as much, as one block:
        slices that fell due while nobody drove the parent (a restart, a takeover) or while an
        earlier slice ran long would otherwise go back to back, the burst slicing exists to
        avoid; the spacing drawn at planning is kept between every two slices."""
        late = now - started.due_ms
        rest = [sl for sl in self.s.slices if sl.status is SliceStatus.PENDING]
        if late <= 0 or not rest:
            return []
        for sl in rest:
            sl.due_ms += late
        gap = self.s.config.twap.gap_ms if self.s.config.twap is not None else 0
        if late < gap:
            return []  # timer latency, already in SLICE_START's late_ms
        return [
            Note(
                "TWAP_REPLANNED",
                {
                    "from_slice": started.index,
                    "shift_ms": late,
                    "due_ms": [sl.due_ms for sl in rest],
                },
            )
        ]

    def _alloc(self) -> int:
        n = self.s.next_n
        self.s.next_n += 1
        return n

    def _machine(self, sl: SlicePlan) -> MakerTaker:
        assert sl.state is not None
        return MakerTaker(
            sl.state,
            cfg=self.s.config.maker,
            inst=self.inst,
            side=self.s.side,
            parent_id=self.parent_id,
            reduce_only=self.s.reduce_only,
            alloc=self._alloc,
            downsize_allowed=not self.s.downsized or sl.state.downsized,
        )

    def _settle(self, sl: SlicePlan, m: MakerTaker) -> list[Command]:
        if not m.done or sl.status is not SliceStatus.ACTIVE:
            return []
        sl.status = SliceStatus.DONE
        st = m.s
        if st.downsized:
            self.s.downsized = True
        result = st.result
        if result is OrderStatus.REJECTED or (result is OrderStatus.EXPIRED and st.downsized):
            for other in self.s.slices:
                if other.status is SliceStatus.PENDING:
                    other.status = SliceStatus.SKIPPED
            return self._finish(st.message)
        if result is OrderStatus.CANCELED or self.s.cancel_requested:
            return self._finish(st.message)
        unfilled = st.target - m.filled
        nxt = self.next_pending()
        if nxt is None:
            return self._finish(st.message if m.filled < st.target else None)
        if unfilled <= 0:
            return []
        nxt.qty += unfilled
        return [
            Note("ROLLOVER", {"from_slice": sl.index, "to_slice": nxt.index, "qty": str(unfilled)})
        ]

    def _finish(self, message: str | None = None) -> list[Command]:
        if self.done:
            return []
        filled = self.filled
        if filled >= self.s.qty:
            status = OrderStatus.FILLED
        elif self.s.cancel_requested:
            status = OrderStatus.CANCELED
        elif filled == 0 and any(
            sl.state is not None and sl.state.result is OrderStatus.REJECTED for sl in self.s.slices
        ):
            status = OrderStatus.REJECTED
        else:
            status = OrderStatus.EXPIRED
        self.s.result = status
        self.s.message = message or (
            None if status is OrderStatus.FILLED else f"filled {filled} of {self.s.qty}"
        )
        return [
            Note(
                "EXEC_DONE",
                {
                    "status": status.value,
                    "filled": str(filled),
                    "qty": str(self.s.qty),
                    "message": self.s.message,
                },
            )
        ]
