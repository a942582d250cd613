"""OCO guardian state machine: every state and transition, driven by events (no I/O, no sleeps)."""

from __future__ import annotations

import random
from decimal import Decimal as D
from typing import Any

import pytest

from s4_router.policies.oco_guardian import GuardianState, LegMode, OcoGuardian
from s4_router.policies.protective import Alert, Cancel, Command, Event, Leg, Place, Query
from tradekit.enums import OrderStatus as S
from tradekit.enums import OrderType, Side

P = "s3-btc-1-x"


def guardian(
    *, both_rest: bool = True, side: Side = Side.BUY, qty: str = "0.003", priority: Leg = Leg.SL
) -> OcoGuardian:
    tp, sl = (D(67000), D(64500)) if side is Side.BUY else (D(63000), D(65500))
    return OcoGuardian.new(
        parent_client_order_id=P,
        position_side=side,
        qty=D(qty),
        tp_price=tp,
        sl_price=sl,
        both_rest=both_rest,
        priority=priority,
    )


def places(cmds: list[Command]) -> list[Place]:
    return [c for c in cmds if isinstance(c, Place)]


def cancels(cmds: list[Command]) -> list[Cancel]:
    return [c for c in cmds if isinstance(c, Cancel)]


def armed(g: OcoGuardian) -> OcoGuardian:
    for p in places(g.arm(0)):
        g.on_report(p.client_order_id, S.ACCEPTED, D(0), 1)
    return g


def test_new_with_take_profit_on_the_loss_side_is_refused() -> None:
    with pytest.raises(ValueError, match="take profit"):
        OcoGuardian.new(
            parent_client_order_id=P,
            position_side=Side.BUY,
            qty=D(1),
            tp_price=D(60000),
            sl_price=D(64000),
            both_rest=True,
        )


def test_arm_with_balance_for_both_places_stop_first_then_take_profit() -> None:
    g = guardian()
    cmds = g.arm(0)
    assert [(p.leg, p.type, p.client_order_id) for p in places(cmds)] == [
        (Leg.SL, OrderType.STOP_LOSS_LIMIT, f"{P}-E2"),
        (Leg.TP, OrderType.LIMIT_MAKER, f"{P}-E3"),
    ]
    assert all(p.side is Side.SELL and p.qty == D("0.003") for p in places(cmds))
    assert g.state is GuardianState.ARMING
    g.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    assert g.state is GuardianState.ARMING  # TP not acknowledged yet
    g.on_report(f"{P}-E3", S.ACCEPTED, D(0), 2)
    assert g.state is GuardianState.ARMED


def test_arm_without_balance_for_both_rests_priority_leg_and_watches_the_other() -> None:
    g = guardian(both_rest=False)
    cmds = g.arm(0)
    assert [p.leg for p in places(cmds)] == [Leg.SL]
    assert g.tp.mode is LegMode.LOCAL and g.sl.mode is LegMode.RESTING
    g.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    assert g.state is GuardianState.ARMED


def test_partial_fill_with_resting_sibling_resizes_it_after_cancel_ack() -> None:
    g = armed(guardian())
    cmds = g.on_report(f"{P}-E3", S.PARTIALLY_FILLED, D("0.001"), 10)
    assert g.state is GuardianState.PARTIAL
    assert cancels(cmds) == [Cancel(Leg.SL, f"{P}-E2")]
    cmds = g.on_report(f"{P}-E2", S.CANCELED, D(0), 12)
    assert [(p.leg, p.qty, p.client_order_id) for p in places(cmds)] == [
        (Leg.SL, D("0.002"), f"{P}-E4")
    ]
    g.on_report(f"{P}-E4", S.ACCEPTED, D(0), 13)
    cmds = g.on_report(f"{P}-E3", S.FILLED, D("0.003"), 20)
    assert g.state is GuardianState.RESOLVING
    assert cancels(cmds) == [Cancel(Leg.SL, f"{P}-E4")]
    cmds = g.on_report(f"{P}-E4", S.CANCELED, D(0), 21)
    assert g.state is GuardianState.RESOLVED
    (res,) = [c for c in cmds if isinstance(c, Event)]
    assert (
        res.name == "OCO_RESOLVE" and res.data["winner"] == "TP" and res.data["mode"] == "guardian"
    )
    assert res.data["legs"]["TP"] == {
        "mode": "RESTING",
        "client_order_id": f"{P}-E3",
        "status": "FILLED",
        "filled": "0.003",
    }
    assert res.data["timings"]["cancel_sent_ms"] == 10


def test_partial_fill_with_local_sibling_resizes_the_watch_only() -> None:
    g = armed(guardian(both_rest=False))
    cmds = g.on_report(f"{P}-E2", S.PARTIALLY_FILLED, D("0.001"), 5)
    assert cmds == [] and g.state is GuardianState.PARTIAL and g.tp.qty == D("0.002")


def test_fill_of_resting_leg_with_local_sibling_resolves_at_once() -> None:
    g = armed(guardian(both_rest=False))
    cmds = g.on_report(f"{P}-E2", S.FILLED, D("0.003"), 5)
    assert g.state is GuardianState.RESOLVED and g.winner is Leg.SL
    assert [type(c) for c in cmds] == [Event]


def test_local_take_profit_reached_cancels_stop_then_sends_market_exit() -> None:
    g = armed(guardian(both_rest=False))
    assert g.on_price(D(66999), D(67001), 5) == []
    cmds = g.on_price(D(67000), D(67001), 6)
    assert g.state is GuardianState.TRIGGERED and cancels(cmds) == [Cancel(Leg.SL, f"{P}-E2")]
    assert g.on_price(D(67010), D(67011), 7) == []  # no second cancel while waiting
    cmds = g.on_report(f"{P}-E2", S.CANCELED, D(0), 8)
    (p,) = places(cmds)
    assert (p.leg, p.type, p.qty, p.client_order_id) == (
        Leg.TP,
        OrderType.MARKET,
        D("0.003"),
        f"{P}-E3",
    )
    cmds = g.on_report(f"{P}-E3", S.FILLED, D("0.003"), 9)
    assert g.state is GuardianState.RESOLVED and g.winner is Leg.TP


def test_trigger_race_with_stop_filled_before_cancel_resolves_without_second_exit() -> None:
    g = armed(guardian(both_rest=False))
    g.on_price(D(67000), D(67001), 6)
    cmds = g.on_report(f"{P}-E2", S.FILLED, D("0.003"), 7)  # cancel lost the race
    assert places(cmds) == [] and g.state is GuardianState.RESOLVED and g.winner is Leg.SL


def test_triggered_exit_with_thin_book_sends_the_remainder_again() -> None:
    g = armed(guardian(both_rest=False))
    g.on_price(D(67000), D(67001), 6)
    g.on_report(f"{P}-E2", S.CANCELED, D(0), 7)
    cmds = g.on_report(f"{P}-E3", S.EXPIRED, D("0.002"), 8)
    (p,) = places(cmds)
    assert (p.type, p.qty, p.client_order_id) == (OrderType.MARKET, D("0.001"), f"{P}-E4")
    g.on_report(f"{P}-E4", S.FILLED, D("0.001"), 9)
    assert g.state is GuardianState.RESOLVED


def test_short_position_with_ask_through_stop_triggers_the_buy_back() -> None:
    g = armed(guardian(both_rest=False, side=Side.SELL, priority=Leg.TP))
    assert g.sl.mode is LegMode.LOCAL and g.tp.client_order_id == f"{P}-E2"
    assert g.on_price(D(65400), D(65499), 1) == []
    cmds = g.on_price(D(65499), D(65500), 2)
    assert cancels(cmds) == [Cancel(Leg.TP, f"{P}-E2")] and g.triggered is Leg.SL
    (p,) = places(g.on_report(f"{P}-E2", S.CANCELED, D(0), 3))
    assert p.side is Side.BUY and p.type is OrderType.MARKET


def test_duplicate_and_stale_reports_with_same_cumulative_fill_count_once() -> None:
    g = armed(guardian())
    g.on_report(f"{P}-E3", S.PARTIALLY_FILLED, D("0.001"), 10)
    assert g.on_report(f"{P}-E3", S.PARTIALLY_FILLED, D("0.001"), 11) == []
    g.on_report(f"{P}-E3", S.PARTIALLY_FILLED, D("0.0005"), 12)  # older, delayed
    assert g.tp.filled == D("0.001")


def test_fills_beyond_the_position_fail_with_overfill_alert() -> None:
    g = armed(guardian())
    g.on_report(f"{P}-E3", S.PARTIALLY_FILLED, D("0.002"), 10)
    cmds = g.on_report(f"{P}-E2", S.PARTIALLY_FILLED, D("0.002"), 11)
    assert g.state is GuardianState.FAILED
    assert [c.kind for c in cmds if isinstance(c, Alert)] == ["OCO_OVERFILL"]


def test_sibling_filled_during_its_cancel_is_counted_and_overfill_detected() -> None:
    g = armed(guardian())
    g.on_report(f"{P}-E3", S.FILLED, D("0.003"), 5)
    assert g.state is GuardianState.RESOLVING
    cmds = g.on_report(f"{P}-E2", S.CANCELED, D("0.001"), 6)  # it traded before the cancel
    assert g.state is GuardianState.FAILED
    assert [c.kind for c in cmds if isinstance(c, Alert)] == ["OCO_OVERFILL"]


def test_repeated_terminal_report_of_a_cancelled_leg_sends_nothing_twice() -> None:
    g = armed(guardian(both_rest=False))
    g.on_price(D(67000), D(67001), 6)
    assert len(places(g.on_report(f"{P}-E2", S.CANCELED, D(0), 7))) == 1
    assert g.on_report(f"{P}-E2", S.CANCELED, D(0), 8) == []  # poll answer after the ack
    assert g.on_timer(10_000) == []


def test_cancel_without_ack_in_time_is_queried_at_the_venue() -> None:
    g = armed(guardian())
    g.on_report(f"{P}-E3", S.FILLED, D("0.003"), 100)
    assert g.on_timer(1000) == []
    assert g.on_timer(2100) == [Query(Leg.SL, f"{P}-E2")]
    assert g.on_timer(2200) == []  # next query only after another timeout
    g.on_report(f"{P}-E2", S.CANCELED, D(0), 2300)
    assert g.state is GuardianState.RESOLVED


def test_stop_refused_as_immediately_triggering_exits_at_market() -> None:
    g = guardian(both_rest=False)
    g.arm(0)
    cmds = g.on_rejected(f"{P}-E2", "Stop price would trigger immediately", 1)
    (p,) = places(cmds)
    assert (p.leg, p.type, p.qty) == (Leg.SL, OrderType.MARKET, D("0.003"))
    assert g.state is GuardianState.TRIGGERED


def test_stop_refused_with_resting_take_profit_cancels_it_first() -> None:
    g = guardian()
    g.arm(0)
    g.on_report(f"{P}-E3", S.ACCEPTED, D(0), 1)
    cmds = g.on_rejected(f"{P}-E2", "would trigger", 2)
    assert cancels(cmds) == [Cancel(Leg.TP, f"{P}-E3")] and places(cmds) == []
    (p,) = places(g.on_report(f"{P}-E3", S.CANCELED, D(0), 3))
    assert (p.leg, p.type) == (Leg.SL, OrderType.MARKET)


def test_post_only_take_profit_refused_is_watched_locally() -> None:
    g = guardian()
    g.arm(0)
    assert g.on_rejected(f"{P}-E3", "would immediately match", 1) == []
    assert g.tp.mode is LegMode.LOCAL
    assert cancels(g.on_price(D(67000), D(67001), 2)) == [Cancel(Leg.SL, f"{P}-E2")]


def test_leg_cancelled_by_the_venue_is_rearmed_once_then_fails() -> None:
    g = armed(guardian(both_rest=False))
    cmds = g.on_report(f"{P}-E2", S.EXPIRED, D(0), 5)
    assert [c.kind for c in cmds if isinstance(c, Alert)] == ["OCO_LEG_REARMED"]
    (p,) = places(cmds)
    assert p.client_order_id == f"{P}-E3" and p.leg is Leg.SL
    cmds = g.on_report(f"{P}-E3", S.CANCELED, D(0), 6)
    assert g.state is GuardianState.FAILED
    assert [c.kind for c in cmds if isinstance(c, Alert)] == ["OCO_LEG_LOST"]


def test_restart_with_persisted_state_continues_to_the_same_outcome() -> None:
    def run(restart_at: int | None) -> tuple[GuardianState, Leg | None, list[str]]:
        g = armed(guardian())
        sent: list[str] = []
        steps = [
            ("report", f"{P}-E3", S.PARTIALLY_FILLED, D("0.001")),
            ("report", f"{P}-E2", S.CANCELED, D(0)),
            ("report", f"{P}-E4", S.ACCEPTED, D(0)),
            ("report", f"{P}-E3", S.FILLED, D("0.003")),
            ("report", f"{P}-E4", S.CANCELED, D(0)),
        ]
        for i, (_, cid, st, filled) in enumerate(steps):
            if restart_at == i:
                g = OcoGuardian.model_validate(g.model_dump(mode="json"))
            for c in g.on_report(cid, st, filled, 10 + i):
                if isinstance(c, Place | Cancel):
                    sent.append(f"{type(c).__name__}:{c.client_order_id}")
        return g.state, g.winner, sent

    baseline = run(None)
    assert baseline[0] is GuardianState.RESOLVED
    for k in range(5):
        assert run(k) == baseline


def test_random_event_orders_never_exceed_the_position_and_end_with_no_live_leg() -> None:
    """Model-level fuzz over 1,000 seeded scenarios: a toy venue executes legs in random order
    with random partials, duplicate reports, cancel races, polls and restarts; invariants hold
    in every run: never more than the position executed, and it ends RESOLVED with no live leg."""
    for seed in range(1000):
        rng = random.Random(seed)
        g = guardian(both_rest=rng.random() < 0.5)
        venue: dict[str, list[Any]] = {}  # cid -> [leg, qty, filled, status]
        pending: list[Command] = list(g.arm(0))
        for t in range(1, 201):
            while pending:
                c = pending.pop(0)
                if isinstance(c, Place):
                    venue[c.client_order_id] = [c.leg, c.qty, D(0), S.ACCEPTED]
                    pending += g.on_report(c.client_order_id, S.ACCEPTED, D(0), t)
                elif isinstance(c, Cancel | Query):
                    o = venue[c.client_order_id]
                    if isinstance(c, Cancel) and not o[3].is_terminal:
                        o[3] = S.CANCELED
                    pending += g.on_report(c.client_order_id, o[3], o[2], t)
            if g.state.is_final:
                break
            if rng.random() < 0.05:  # S4 restarts: the guardian comes back from its state
                g = OcoGuardian.model_validate(g.model_dump(mode="json"))
            live = [cid for cid, o in venue.items() if not o[3].is_terminal]
            r = rng.random()
            if live and r < 0.6:
                cid = rng.choice(live)
                o = venue[cid]
                left = o[1] - o[2]
                fill = left if rng.random() < 0.5 else (left / 2).quantize(D("0.0001"))
                o[2] += fill
                o[3] = S.FILLED if o[2] == o[1] else S.PARTIALLY_FILLED
                pending += g.on_report(cid, o[3], o[2], t)
                if rng.random() < 0.2:  # duplicate report
                    pending += g.on_report(cid, o[3], o[2], t)
            elif r < 0.8:
                px = D(rng.choice([64000, 65000, 67500]))
                pending += g.on_price(px, px + 1, t)
            else:
                pending += g.on_timer(t * 1000)
            assert g.filled <= g.qty
        assert g.state is GuardianState.RESOLVED, (seed, g.summary())
        assert g.filled == g.qty
        assert not [cid for cid, o in venue.items() if not o[3].is_terminal], seed
