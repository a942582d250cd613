"""Maker→Taker state machine, driven by hand with explicit times (no clock, no sleeps)."""

from __future__ import annotations

from decimal import Decimal as D

from s4_router.policies.liquidity import LiquidityConfig
from s4_router.policies.maker_taker import MakerTaker, MakerTakerConfig, Phase, SliceState
from s4_router.policies.model import Cancel, Note, RejectKind
from tests.unit.s4.helpers import BTC, book, places, report
from tradekit.enums import OrderRole, OrderStatus, Side

S = OrderStatus
PROBE = LiquidityConfig(spread_bps_max=D(3), depth_top1_usdt_min=D(200))


def machine(
    target: str = "0.003", wait: int = 1000, *, side: Side = Side.BUY, chase: bool = False
) -> MakerTaker:
    counter = iter(range(1, 100))
    cfg = MakerTakerConfig(maker_wait_ms=wait, chase_one_tick=chase, probe=PROBE, split_gap_ms=0)
    return MakerTaker(
        MakerTaker.start(target=D(target), index=0, cfg=cfg),
        cfg=cfg,
        inst=BTC,
        side=side,
        parent_id="p1",
        reduce_only=False,
        alloc=lambda: next(counter),
    )


def test_start_with_maker_wait_places_post_only_at_best_price_on_own_side() -> None:
    m = machine()
    assert m.wants_book(0)
    (p,) = places(m.advance(0, book()))
    assert (p.child_id, p.role, p.post_only, p.price, p.qty) == (
        "p1-E1",
        OrderRole.MAKER,
        True,
        D(64999),
        D("0.003"),
    )
    sell = machine(side=Side.SELL)
    assert places(sell.advance(0, book()))[0].price == D(65001)


def test_timeout_with_no_fill_cancels_and_sends_taker_only_after_cancel_ack() -> None:
    m = machine()
    m.advance(0, book())
    m.on_report(1, report("p1-E1", S.ACCEPTED))
    assert m.advance(999, None) == []
    cmds = m.advance(1000, None)
    assert Cancel("p1-E1") in cmds and m.s.phase is Phase.CANCELING
    # No ack yet: nothing is sent, whatever the time, until the cancel retry.
    assert places(m.advance(1500, book())) == []
    assert m.on_report(1600, report("p1-E1", S.PENDING_CANCEL)) == []
    m.on_report(1700, report("p1-E1", S.CANCELED))
    (taker,) = places(m.advance(1700, book()))
    assert (taker.child_id, taker.role, taker.price, taker.qty) == (
        "p1-E2",
        OrderRole.TAKER,
        None,
        D("0.003"),
    )
    m.on_report(1701, report("p1-E2", S.FILLED, "0.003"))
    assert m.done and m.s.result is S.FILLED and m.filled == D("0.003")


def test_timeout_with_partial_fill_sends_target_minus_fills_confirmed_by_the_ack() -> None:
    m = machine()
    m.advance(0, book())
    m.on_report(10, report("p1-E1", S.PARTIALLY_FILLED, "0.001"))
    m.advance(1000, None)
    # The ack reports a fill that raced the cancel: the remainder must account for it.
    m.on_report(1100, report("p1-E1", S.CANCELED, "0.002"))
    (taker,) = places(m.advance(1100, book()))
    assert taker.qty == D("0.001")


def test_cancel_without_ack_is_retried_after_cancel_retry_ms() -> None:
    m = machine()
    m.advance(0, book())
    m.advance(1000, None)
    assert m.wakeup_ms() == 3000
    assert Cancel("p1-E1") in m.advance(3000, None)


def test_post_only_reject_reprices_at_the_new_best() -> None:
    m = machine()
    m.advance(0, book())
    cmds = m.on_report(5, report("p1-E1", S.REJECTED, reject=RejectKind.POST_ONLY))
    assert any(isinstance(c, Note) and c.event == "REPRICE" for c in cmds)
    (p,) = places(m.advance(5, book("65010", "65012")))
    assert (p.child_id, p.price, p.post_only) == ("p1-E2", D(65010), True)
    assert m.s.deadline_ms == 1005


def test_post_only_rejects_beyond_max_reprices_fall_back_to_taker() -> None:
    m = machine()
    for n in range(1, 5):
        (p,) = places(m.advance(n, book()))
        assert p.role is OrderRole.MAKER
        m.on_report(n, report(p.child_id, S.REJECTED, reject=RejectKind.POST_ONLY))
    (p,) = places(m.advance(10, book()))
    assert p.role is OrderRole.TAKER and p.child_id == "p1-E5"


def test_chase_with_timeout_places_one_tick_better_then_market() -> None:
    m = machine(chase=True)
    m.advance(0, book("64990", "65000"))
    m.advance(1000, None)
    m.on_report(1001, report("p1-E1", S.CANCELED))
    (chase,) = places(m.advance(1001, book("64990", "65000")))
    assert (chase.role, chase.price, chase.post_only) == (OrderRole.CHASE, D(64991), True)
    m.advance(2001, None)
    m.on_report(2002, report("p1-E2", S.CANCELED))
    (taker,) = places(m.advance(2002, book()))
    assert taker.role is OrderRole.TAKER


def test_chase_with_one_tick_spread_stays_passive_at_best() -> None:
    m = machine(chase=True)
    m.advance(0, book())
    m.advance(1000, None)
    m.on_report(1001, report("p1-E1", S.EXPIRED))
    (chase,) = places(m.advance(1001, book("65000", "65001")))
    assert chase.price == D(65000)


def test_maker_filled_before_timeout_finishes_without_taker() -> None:
    m = machine()
    m.advance(0, book())
    m.on_report(10, report("p1-E1", S.FILLED, "0.003"))
    assert m.done and m.s.result is S.FILLED
    assert m.advance(5000, book()) == []


def test_duplicate_and_reordered_reports_never_double_count() -> None:
    m = machine()
    m.advance(0, book())
    m.on_report(1, report("p1-E1", S.PARTIALLY_FILLED, "0.002"))
    m.on_report(2, report("p1-E1", S.PARTIALLY_FILLED, "0.002"))
    m.on_report(3, report("p1-E1", S.PARTIALLY_FILLED, "0.001"))  # stale
    assert m.filled == D("0.002")
    m.on_report(4, report("p1-E1", S.FILLED, "0.009"))  # a venue can never overfill us
    assert m.filled == D("0.003") and m.s.result is S.FILLED


def test_insufficient_funds_downsizes_once_and_ends_on_repeat() -> None:
    m = machine("0.004", wait=0)
    (p,) = places(m.advance(0, book()))
    cmds = m.on_report(1, report(p.child_id, S.REJECTED, reject=RejectKind.INSUFFICIENT_FUNDS))
    assert [c.event for c in cmds if isinstance(c, Note)] == ["DOWNSIZE"]
    (p2,) = places(m.advance(1, book()))
    assert p2.qty == D("0.002") and p2.child_id == "p1-E2"
    cmds = m.on_report(2, report(p2.child_id, S.REJECTED, reject=RejectKind.INSUFFICIENT_FUNDS))
    assert "INSUFFICIENT_BALANCE_REPEATED" in [c.event for c in cmds if isinstance(c, Note)]
    assert m.done and m.s.result is S.REJECTED


def test_cancel_request_with_partial_fill_cancels_working_and_ends_canceled() -> None:
    m = machine()
    m.advance(0, book())
    m.on_report(5, report("p1-E1", S.PARTIALLY_FILLED, "0.001"))
    assert m.on_cancel_request(6)[-1] == Cancel("p1-E1")
    assert m.on_cancel_request(7) == []
    m.on_report(8, report("p1-E1", S.CANCELED, "0.001"))
    assert m.done and m.s.result is S.CANCELED and m.filled == D("0.001")
    assert places(m.advance(9, book())) == []


def test_cancel_request_racing_a_complete_fill_ends_filled() -> None:
    m = machine()
    m.advance(0, book())
    m.on_cancel_request(1)
    m.on_report(2, report("p1-E1", S.FILLED, "0.003"))
    assert m.s.result is S.FILLED


def test_market_with_zero_wait_sends_taker_at_once() -> None:
    m = machine(wait=0)
    (p,) = places(m.advance(0, book()))
    assert p.role is OrderRole.TAKER and p.price is None and not p.post_only


def test_taker_expiring_unfilled_retries_then_gives_up_expired() -> None:
    m = machine(wait=0)
    for n in range(1, 4):
        (p,) = places(m.advance(n, book()))
        m.on_report(n, report(p.child_id, S.EXPIRED))
    assert m.done and m.s.result is S.EXPIRED and "unfilled 3 times" in (m.s.message or "")


def test_state_with_json_roundtrip_resumes_identically() -> None:
    m = machine()
    m.advance(0, book())
    m.on_report(5, report("p1-E1", S.PARTIALLY_FILLED, "0.001"))
    blob = m.s.model_dump(mode="json")
    counter = iter(range(2, 100))
    again = MakerTaker(
        SliceState.model_validate(blob),
        cfg=m.cfg,
        inst=BTC,
        side=Side.BUY,
        parent_id="p1",
        reduce_only=False,
        alloc=lambda: next(counter),
    )
    assert again.advance(1000, None) == m.advance(1000, None)
    assert again.s == m.s


def test_remainder_below_min_notional_ends_expired_without_sending() -> None:
    m = machine("0.003", wait=0)
    cmds = m.advance(0, book("1000", "1001"))  # 0.003 * 1000.5 = 3 USDT < minNotional 5
    assert places(cmds) == []
    assert [c.event for c in cmds if isinstance(c, Note)] == ["REMAINDER_UNTRADABLE", "SLICE_DONE"]
    assert m.s.result is S.EXPIRED and "below" in (m.s.message or "")


def test_wide_spread_delays_bounded_then_goes_degraded() -> None:
    m = machine(wait=0)
    wide = book("64900", "65100")  # ~31 bps
    t = 0
    delays = 0
    while not places(cmds := m.advance(t, wide)):
        assert any(isinstance(c, Note) and c.event == "LIQUIDITY_PROBE" for c in cmds)
        delays += 1
        t = m.s.hold_until_ms or t
    assert delays == 8 and t == 2000  # 250 ms steps up to 2 s
    probe_note = next(c for c in cmds if isinstance(c, Note) and c.event == "LIQUIDITY_PROBE")
    assert probe_note.data["degraded"] is True


def test_partial_fill_off_step_sends_remainder_rounded_down_to_step() -> None:
    m = machine("0.003")
    m.advance(0, book())
    m.on_report(5, report("p1-E1", S.PARTIALLY_FILLED, "0.000341"))
    m.advance(1000, None)
    m.on_report(1001, report("p1-E1", S.CANCELED, "0.000341"))
    (taker,) = places(m.advance(1001, book()))
    assert taker.qty == D("0.002")  # 0.002659 left: one step below is what can be sent
    cmds = m.on_report(1002, report("p1-E2", S.FILLED, "0.002"))
    assert m.done and m.s.result is S.EXPIRED and m.filled == D("0.002341")
    assert "SLICE_DONE" in [c.event for c in cmds if isinstance(c, Note)]
