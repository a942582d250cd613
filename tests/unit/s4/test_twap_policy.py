"""TWAP slicing, schedule and the parent machine (restart mid-schedule included)."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import pairwise

import pytest

from s4_router.policies.liquidity import LiquidityConfig
from s4_router.policies.maker_taker import MakerTakerConfig
from s4_router.policies.model import Cancel, Command, Note, Place
from s4_router.policies.parent_machine import ExecState, ExecutionConfig, ParentMachine, SliceStatus
from s4_router.policies.twap import TwapPlan, schedule, split_quantity
from tests.unit.s4.helpers import BTC, book, places, report
from tradekit.enums import OrderStatus, Side

S = OrderStatus


@pytest.mark.parametrize(
    ("total", "slices", "price", "expected"),
    [
        ("0.004", 2, "65000", ["0.002", "0.002"]),
        ("0.005", 2, "65000", ["0.003", "0.002"]),
        ("0.010", 4, "65000", ["0.003", "0.003", "0.002", "0.002"]),
        ("0.002", 4, "65000", ["0.001", "0.001"]),  # no more slices than steps
        ("0.012", 4, "1000", ["0.006", "0.006"]),  # 0.003 * 1000 < 5: merged into 2 slices
        ("0.004", 4, "1000", ["0.004"]),
    ],
)
def test_split_quantity_with_min_notional_merges_remainder(
    total: str, slices: int, price: str, expected: list[str]
) -> None:
    qtys = split_quantity(D(total), slices, BTC, D(price))
    assert qtys == [D(q) for q in expected] and sum(qtys) == D(total)


def test_schedule_with_jitter_is_deterministic_bounded_and_monotone() -> None:
    a = schedule(start_ms=1000, slices=4, gap_ms=1000, jitter_pct=D("0.2"), seed="p1")
    assert a == schedule(start_ms=1000, slices=4, gap_ms=1000, jitter_pct=D("0.2"), seed="p1")
    assert a[0] == 1000 and a == sorted(a)
    for i, due in enumerate(a[1:], start=1):
        assert abs(due - (1000 + i * 1000)) <= 200
    assert schedule(start_ms=0, slices=3, gap_ms=500, jitter_pct=D(0), seed="x") == [0, 500, 1000]


def parent(qty: str = "0.006", slices: int = 3, gap: int = 1000, wait: int = 0) -> ParentMachine:
    cfg = ExecutionConfig(
        policy="TWAP",
        maker=MakerTakerConfig(maker_wait_ms=wait, probe=LiquidityConfig(), split_gap_ms=0),
        twap=TwapPlan(slices=slices, gap_ms=gap, jitter_pct=D(0)),
    )
    return ParentMachine.plan(
        parent_id="p9",
        side=Side.BUY,
        qty=D(qty),
        reduce_only=False,
        config=cfg,
        inst=BTC,
        now=0,
        ref_price=D(65000),
    )


def test_twap_with_three_slices_sends_each_at_its_due_time_once() -> None:
    m = parent()
    sent: list[str] = []
    for t in range(0, 3001, 100):
        if m.wants_book(t):
            for p in places(m.advance(t, book())):
                sent.append(f"{t}:{p.child_id}:{p.qty}")
                m.on_report(t, report(p.child_id, S.FILLED, str(p.qty)))
        else:
            assert places(m.advance(t, None)) == []
    assert sent == ["0:p9-E1:0.002", "1000:p9-E2:0.002", "2000:p9-E3:0.002"]
    assert m.done and m.s.result is S.FILLED and m.filled == D("0.006")


def test_twap_with_unfilled_slice_rolls_remainder_into_next() -> None:
    m = parent(qty="0.004", slices=2)
    (p,) = places(m.advance(0, book()))
    cmds: list[Command] = []
    for _ in range(3):  # a taker that keeps expiring unfilled: the slice gives up
        cmds = m.on_report(0, report(p.child_id, S.EXPIRED))
        nxt = places(m.advance(0, book()))
        if not nxt:
            break
        p = nxt[0]
    assert any(isinstance(c, Note) and c.event == "ROLLOVER" for c in cmds)
    assert m.s.slices[1].qty == D("0.004")
    (p2,) = places(m.advance(1000, book()))
    assert p2.qty == D("0.004")


def test_twap_with_restart_mid_schedule_resumes_without_repeating_or_skipping() -> None:
    m = parent()
    (p,) = places(m.advance(0, book()))
    m.on_report(0, report(p.child_id, S.FILLED, "0.002"))
    blob = m.s.model_dump(mode="json")  # what the store holds when the process dies
    again = ParentMachine(ExecState.model_validate(blob), inst=BTC, parent_id="p9")
    assert [sl.status for sl in again.s.slices] == [
        SliceStatus.DONE,
        SliceStatus.PENDING,
        SliceStatus.PENDING,
    ]
    assert not again.wants_book(999)
    cmds = again.advance(5000, book())  # late after the restart: sent now, once
    (p2,) = places(cmds)
    assert p2.child_id == "p9-E2"
    assert [
        c.data["shift_ms"] for c in cmds if isinstance(c, Note) and c.event == "TWAP_REPLANNED"
    ] == [4000]
    again.on_report(5000, report("p9-E2", S.FILLED, "0.002"))
    # Overdue too, but re-planned from the restart: gap_ms after slice 1, not at once.
    assert places(again.advance(5000, book())) == [] and not again.wants_book(5999)
    (p3,) = places(again.advance(6000, book()))
    assert p3.child_id == "p9-E3"
    again.on_report(6000, report("p9-E3", S.FILLED, "0.002"))
    assert again.done and again.filled == D("0.006")


def test_twap_behind_a_slow_slice_keeps_gap_between_the_remaining_slices() -> None:
    m = parent(qty="0.008", slices=4, wait=3500)
    starts: dict[int, int] = {}
    for t in range(0, 30_001, 100):
        todo = m.advance(t, book())
        while todo:
            c = todo.pop(0)
            if isinstance(c, Place):
                starts.setdefault(c.slice_index, t)
                # Slice 0's maker rests unfilled for 3.5 gaps; every later maker fills at once.
                if not c.post_only or c.slice_index > 0:
                    todo += m.on_report(t, report(c.child_id, S.FILLED, str(c.qty)))
            elif isinstance(c, Cancel):  # the maker timed out unfilled
                todo += m.on_report(t, report(c.child_id, S.CANCELED))
        if m.done:
            break
    assert m.done and m.filled == D("0.008") and sorted(starts) == [0, 1, 2, 3]
    times = [starts[i] for i in range(4)]
    assert all(b - a >= 1000 for a, b in pairwise(times)), times


def test_twap_with_cancel_request_skips_pending_slices_and_ends_canceled() -> None:
    m = parent(wait=500)
    (p,) = places(m.advance(0, book()))
    m.on_report(1, report(p.child_id, S.PARTIALLY_FILLED, "0.001"))
    cmds = m.on_cancel_request(2)
    assert [getattr(c, "child_id", None) for c in cmds if not isinstance(c, Note)] == [p.child_id]
    m.on_report(3, report(p.child_id, S.CANCELED, "0.001"))
    assert m.done and m.s.result is S.CANCELED and m.filled == D("0.001")
    assert [sl.status for sl in m.s.slices][1:] == [SliceStatus.SKIPPED, SliceStatus.SKIPPED]


def test_parent_with_reject_ends_rejected_and_skips_rest() -> None:
    m = parent()
    (p,) = places(m.advance(0, book()))
    m.on_report(0, report(p.child_id, S.REJECTED))
    assert m.done and m.s.result is S.REJECTED
    assert places(m.advance(5000, book())) == []
