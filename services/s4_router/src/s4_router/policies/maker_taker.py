"""Maker→Taker for one quantity (a whole intent, or one TWAP slice).

    WANT_MAKER ──place post-only at best──► MAKER ──timeout (no fill / partial)──► CANCELING
        ▲   │ post-only reject: re-price at the new best (≤ max_reprices, then taker)   │
        │   └───────────────────────────── filled ──► DONE                              │
        │                                                        cancel ack (terminal)  ▼
        └──── chase one tick (once, when configured) ◄──── remainder = target − fills ──┤
                                                                                        ▼
    WANT_TAKER ──market for the remainder (split by the liquidity probe)──► TAKER ──► DONE

"Timeout or partial fill" (spec 004 §D2: 不足量或超時) is read as: when the wait ends with the
maker order unfilled or only partly filled, cancel and take the rest; a partial fill before the
deadline does not cut the wait short.

Rules the money depends on:

* the remainder is sent only after the venue has *acknowledged* the cancel (a terminal report
  of the maker child carrying its final executedQty): never target − "fills we happen to have
  seen", which could buy the same quantity twice;
* fills are cumulative per child (`ChildReport.filled_qty`), so duplicated or reordered reports
  cannot double count;
* `maker_wait_ms == 0` is a plain market execution (taker only);
* an insufficient-balance reject downsizes the remainder once (`downsize_factor`); a second
  one ends the slice (and the caller alerts);
* a cancel request stops new children, cancels the working one and ends CANCELED once the
  venue confirms.

The machine never sleeps and never reads a clock: `now` comes with every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from s4_router.policies.liquidity import LiquidityConfig, ProbeAction, probe
from s4_router.policies.model import Book, Cancel, ChildReport, Command, Note, Place, RejectKind
from tradekit.enums import OrderRole, OrderStatus, Side
from tradekit.ids import child_order_id
from tradekit.instrument import Instrument, round_to_increment
from tradekit.money import ZERO

MAX_CHILDREN = 99  # child ids are {client_order_id}-E1 … -E99


class MakerTakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    maker_wait_ms: int = Field(ge=0)
    chase_one_tick: bool = False
    max_reprices: int = Field(default=3, ge=0)
    taker_max_failures: int = Field(default=3, ge=1)
    cancel_retry_ms: int = Field(default=2000, ge=1)
    split_gap_ms: int = Field(default=250, ge=0)
    downsize_factor: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    probe: LiquidityConfig = Field(default_factory=LiquidityConfig)


class Phase(StrEnum):
    WANT_MAKER = "WANT_MAKER"
    MAKER = "MAKER"
    CANCELING = "CANCELING"
    WANT_TAKER = "WANT_TAKER"
    TAKER = "TAKER"
    DONE = "DONE"


class ChildState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    n: int
    role: OrderRole
    qty: Decimal
    price: Decimal | None = None
    status: OrderStatus = OrderStatus.SUBMITTED
    filled: Decimal = ZERO
    placed_ms: int


class SliceState(BaseModel):
    """Persisted state of one Maker→Taker run (JSON via model_dump(mode='json'))."""

    model_config = ConfigDict(extra="forbid")

    index: int = 0
    target: Decimal
    phase: Phase = Phase.WANT_MAKER
    children: list[ChildState] = Field(default_factory=list)
    working: str | None = None
    deadline_ms: int | None = None
    hold_until_ms: int | None = None
    delayed_ms: int = 0
    reprices: int = 0
    chased: bool = False
    want_chase: bool = False
    taker_failures: int = 0
    downsized: bool = False
    cancel_requested: bool = False
    cancel_sent_ms: int | None = None
    result: OrderStatus | None = None
    message: str | None = None

    @property
    def filled(self) -> Decimal:
        return sum((c.filled for c in self.children), ZERO)


@dataclass(eq=False)
class MakerTaker:
    """One Maker→Taker run over its state `s` (a new run's: :meth:`start`). `alloc()` hands out
    the next child number (shared by all slices of a parent so ids never repeat)."""

    s: SliceState
    _: KW_ONLY
    cfg: MakerTakerConfig
    inst: Instrument
    side: Side
    parent_id: str
    reduce_only: bool
    alloc: Callable[[], int]
    downsize_allowed: bool = True

    @staticmethod
    def start(*, target: Decimal, index: int, cfg: MakerTakerConfig) -> SliceState:
        """A new run's state: the maker phase first when there is a maker wait."""
        phase = Phase.WANT_MAKER if cfg.maker_wait_ms > 0 else Phase.WANT_TAKER
        return SliceState(index=index, target=target, phase=phase)

    # ---- queries ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.s.phase is Phase.DONE

    @property
    def filled(self) -> Decimal:
        return self.s.filled

    @property
    def remaining(self) -> Decimal:
        return self.s.target - self.s.filled

    def wants_book(self, now: int) -> bool:
        """A placement is due: the caller must pass a fresh book to `advance`."""
        return self.s.phase in (Phase.WANT_MAKER, Phase.WANT_TAKER) and (
            self.s.hold_until_ms is None or now >= self.s.hold_until_ms
        )

    def wakeup_ms(self) -> int | None:
        """When the machine next needs `advance` without any venue news (None: only news)."""
        s = self.s
        if s.phase in (Phase.WANT_MAKER, Phase.WANT_TAKER):
            return s.hold_until_ms or 0
        if s.phase is Phase.MAKER:
            return s.deadline_ms
        if s.phase is Phase.CANCELING and s.cancel_sent_ms is not None:
            return s.cancel_sent_ms + self.cfg.cancel_retry_ms
        return None

    # ---- events -------------------------------------------------------------------------------
    def advance(self, now: int, book: Book | None) -> list[Command]:
        """Time moved (and maybe a placement is due, with `book`)."""
        s = self.s
        if s.phase is Phase.DONE:
            return []
        if s.phase is Phase.MAKER and s.deadline_ms is not None and now >= s.deadline_ms:
            return self._cancel_working(now, "MAKER_TIMEOUT")
        if s.phase is Phase.CANCELING and s.cancel_sent_ms is not None and s.working:
            if now >= s.cancel_sent_ms + self.cfg.cancel_retry_ms:
                s.cancel_sent_ms = now  # no ack yet: ask again (a cancel is idempotent)
                return [Cancel(s.working), Note("CANCEL_RETRY", {"child": s.working})]
            return []
        if book is None or not self.wants_book(now):
            return []
        return self._place(now, book)

    def on_report(self, now: int, r: ChildReport) -> list[Command]:
        s = self.s
        c = next((c for c in s.children if c.id == r.child_id), None)
        if c is None:
            return []
        if r.filled_qty > c.filled:
            c.filled = min(r.filled_qty, c.qty)
        c.status = r.status
        if r.child_id != s.working or s.phase is Phase.DONE:
            return []
        if s.phase in (Phase.MAKER, Phase.TAKER) and r.status is OrderStatus.REJECTED:
            return self._on_reject(c, r)
        if not r.status.is_terminal:
            return []  # accepted / partially filled / ambiguous: keep waiting
        # The working child is finished at the venue: its filled qty is final.
        s.working = None
        s.deadline_ms = None
        s.cancel_sent_ms = None
        out: list[Command] = []
        if s.phase is Phase.CANCELING:
            out.append(
                Note(
                    "CANCEL_ACK", {"child": c.id, "status": r.status.value, "filled": str(c.filled)}
                )
            )
        if s.cancel_requested:
            return [*out, *self._finish(OrderStatus.CANCELED, "cancel requested")]
        if self.remaining <= 0:
            return [*out, *self._finish(OrderStatus.FILLED)]
        if round_to_increment(self.remaining, self.inst.stepSize, "down") <= 0:
            return [
                *out,
                Note("REMAINDER_UNTRADABLE", {"remaining": str(self.remaining)}),
                *self._finish(OrderStatus.EXPIRED, f"remainder {self.remaining} is below one step"),
            ]
        if c.role is OrderRole.TAKER:
            if c.filled == 0:
                s.taker_failures += 1
                if s.taker_failures >= self.cfg.taker_max_failures:
                    return [
                        *out,
                        *self._finish(
                            OrderStatus.EXPIRED,
                            f"taker children ended unfilled {s.taker_failures} times",
                        ),
                    ]
            s.phase = Phase.WANT_TAKER
            s.hold_until_ms = now + self.cfg.split_gap_ms
            return out
        # A maker/chase child ended (timeout cancel, STP expiry, external cancel).
        if self.cfg.chase_one_tick and not s.chased:
            s.chased = True
            s.want_chase = True
            s.phase = Phase.WANT_MAKER
            s.hold_until_ms = None
            return [*out, Note("CHASE", {"remaining": str(self.remaining)})]
        s.phase = Phase.WANT_TAKER
        s.hold_until_ms = None
        return [*out, Note("TAKER_FALLBACK", {"remaining": str(self.remaining)})]

    def on_cancel_request(self, now: int) -> list[Command]:
        s = self.s
        if s.phase is Phase.DONE or s.cancel_requested:
            return []
        s.cancel_requested = True
        if s.working is None:
            return self._finish(OrderStatus.CANCELED, "cancel requested")
        if s.phase is Phase.CANCELING:
            return []
        return self._cancel_working(now, "CANCEL_REQUESTED")

    # ---- internals ----------------------------------------------------------------------------
    def _cancel_working(self, now: int, why: str) -> list[Command]:
        s = self.s
        assert s.working is not None
        s.phase = Phase.CANCELING
        s.cancel_sent_ms = now
        return [Note(why, {"child": s.working, "filled": str(self.filled)}), Cancel(s.working)]

    def _tradable(self, qty: Decimal, price: Decimal) -> bool:
        if qty < self.inst.stepSize or qty < self.inst.minQty:
            return False
        return self.reduce_only or qty * price >= self.inst.minNotional

    def _place(self, now: int, book: Book) -> list[Command]:
        s = self.s
        remaining = self.remaining
        if remaining <= 0:
            return self._finish(OrderStatus.FILLED)
        maker = s.phase is Phase.WANT_MAKER
        role = OrderRole.TAKER
        if maker:
            role = OrderRole.CHASE if s.want_chase else OrderRole.MAKER
        # Venues fill in lots of stepSize; a residue below one step cannot be sent.
        sendable = round_to_increment(remaining, self.inst.stepSize, "down")
        ref = book.mid if book.two_sided else None
        if sendable <= 0 or (ref is not None and not self._tradable(sendable, ref)):
            return [
                Note("REMAINDER_UNTRADABLE", {"remaining": str(remaining), "mid": str(ref)}),
                *self._finish(
                    OrderStatus.EXPIRED,
                    f"remainder {remaining} below the instrument's minimum order",
                ),
            ]
        decision = probe(
            book,
            side=self.side,
            role=role,
            qty=sendable,
            inst=self.inst,
            cfg=self.cfg.probe,
            delayed_ms=s.delayed_ms,
        )
        note = Note("LIQUIDITY_PROBE", {"role": role.value, **decision.as_event()})
        if decision.action is ProbeAction.DELAY:
            s.delayed_ms += decision.delay_ms
            s.hold_until_ms = now + decision.delay_ms
            return [note]
        if len(s.children) >= MAX_CHILDREN:
            return self._finish(OrderStatus.EXPIRED, "child order budget exhausted")
        price: Decimal | None = None
        if maker:
            if not book.two_sided:
                s.phase = Phase.WANT_TAKER
                return [note, Note("TAKER_FALLBACK", {"why": "one-sided book"})]
            price = self._maker_price(book, chase=s.want_chase)
            if price is None:
                s.phase = Phase.WANT_TAKER
                s.hold_until_ms = None
                return [note, Note("TAKER_FALLBACK", {"why": "no passive price left"})]
        qty = decision.qty if role is OrderRole.TAKER else sendable
        n = self.alloc()
        if n > MAX_CHILDREN:
            return self._finish(OrderStatus.EXPIRED, "child order budget exhausted")
        cid = child_order_id(self.parent_id, n)
        s.children.append(ChildState(id=cid, n=n, role=role, qty=qty, price=price, placed_ms=now))
        s.working = cid
        s.delayed_ms = 0
        s.hold_until_ms = None
        s.want_chase = False
        if maker:
            s.phase = Phase.MAKER
            s.deadline_ms = now + self.cfg.maker_wait_ms
        else:
            s.phase = Phase.TAKER
            s.deadline_ms = None
        return [note, Place(cid, n, role, self.side, qty, price, maker, s.index)]

    def _maker_price(self, book: Book, *, chase: bool) -> Decimal | None:
        """Best price on our side (one tick better when chasing), rounded passively onto the
        tick; None when no passive price exists (it would cross)."""
        tick = self.inst.tickSize
        if self.side is Side.BUY:
            price = book.best_bid + tick if chase else book.best_bid
            if price >= book.best_ask:
                price = book.best_bid if chase else book.best_ask - tick
            price = self.inst.limit_price(self.side, price)
            return price if ZERO < price < book.best_ask else None
        price = book.best_ask - tick if chase else book.best_ask
        if price <= book.best_bid:
            price = book.best_ask if chase else book.best_bid + tick
        price = self.inst.limit_price(self.side, price)
        return price if price > book.best_bid else None

    def _on_reject(self, c: ChildState, r: ChildReport) -> list[Command]:
        s = self.s
        s.working = None
        s.deadline_ms = None
        if r.reject is RejectKind.POST_ONLY and c.role in (OrderRole.MAKER, OrderRole.CHASE):
            if s.reprices < self.cfg.max_reprices:
                s.reprices += 1
                s.want_chase = c.role is OrderRole.CHASE
                s.phase = Phase.WANT_MAKER
                s.hold_until_ms = None
                return [Note("REPRICE", {"child": c.id, "reprices": s.reprices})]
            s.phase = Phase.WANT_TAKER
            s.hold_until_ms = None
            return [Note("TAKER_FALLBACK", {"why": "post-only rejected too often"})]
        if r.reject is RejectKind.INSUFFICIENT_FUNDS:
            if self.downsize_allowed and not s.downsized:
                s.downsized = True
                smaller = self.remaining * self.cfg.downsize_factor
                new_rem = round_to_increment(smaller, self.inst.stepSize, "down")
                ref = c.price or ZERO
                if new_rem > 0 and (ref == 0 or self._tradable(new_rem, ref)):
                    old = s.target
                    s.target = self.filled + new_rem
                    s.phase = (
                        Phase.WANT_MAKER if c.role is not OrderRole.TAKER else Phase.WANT_TAKER
                    )
                    s.want_chase = c.role is OrderRole.CHASE
                    s.hold_until_ms = None
                    return [
                        Note("DOWNSIZE", {"child": c.id, "from": str(old), "to": str(s.target)})
                    ]
            return [
                Note("INSUFFICIENT_BALANCE_REPEATED", {"child": c.id, "downsized": s.downsized}),
                *self._finish(self._end_status(), f"insufficient balance: {r.message}"),
            ]
        if r.reject is RejectKind.NOT_FOUND:
            # Venue evidence that the order never existed (e.g. resolved after a cancel request).
            if s.cancel_requested:
                return self._finish(OrderStatus.CANCELED, "cancel requested")
            s.phase = Phase.WANT_TAKER if c.role is OrderRole.TAKER else Phase.WANT_MAKER
            return []
        return self._finish(self._end_status(), f"venue rejected: {r.message}")

    def _end_status(self) -> OrderStatus:
        """The end of a run a definitive reject stops, by what it had filled."""
        if self.filled >= self.s.target:
            return OrderStatus.FILLED
        return OrderStatus.EXPIRED if self.filled > 0 else OrderStatus.REJECTED

    def _finish(self, status: OrderStatus, message: str | None = None) -> list[Command]:
        s = self.s
        if status is OrderStatus.CANCELED and self.filled >= s.target:
            status = OrderStatus.FILLED
        s.phase = Phase.DONE
        s.result = status
        s.message = message
        s.working = None
        s.deadline_ms = s.hold_until_ms = s.cancel_sent_ms = None
        return [
            Note(
                "SLICE_DONE",
                {
                    "slice": s.index,
                    "status": status.value,
                    "target": str(s.target),
                    "filled": str(self.filled),
                    "message": message,
                },
            )
        ]
