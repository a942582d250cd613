"""Every fault kind, the request-weight limit, and reproducibility from the seed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from svckit.clock import ManualClock
from tradekit.enums import Market, OrderType, Side
from venue import errors
from venue.faults import FaultInjector, FaultKind, FaultPlan, ScriptedFault
from venue.venue import Venue

D = Decimal
SYM = "TESTUSDT"
SPOT = Market.SPOT


def place(venue: Venue, coid: str):
    return venue.place_order(
        SPOT, SYM, Side.BUY, OrderType.LIMIT, D("1"), price=D("99.0"), client_order_id=coid
    )


def exists(venue: Venue, coid: str) -> bool:
    try:
        venue.get_order(SPOT, SYM, client_order_id=coid)
    except errors.VenueError as exc:
        if exc.code != -2013:
            raise
        return False
    return True


def test_place_with_injected_429_raises_retry_after_and_creates_nothing(venue: Venue) -> None:
    venue.faults.script("place", FaultKind.RATE_LIMIT)
    with pytest.raises(errors.RateLimitExceeded) as exc:
        place(venue, "f-429")
    assert (exc.value.http_status, exc.value.code) == (429, -1003)
    assert exc.value.retry_after_s == 1.0
    assert not exists(venue, "f-429")


def test_place_with_injected_5xx_raises_server_error_and_creates_nothing(venue: Venue) -> None:
    venue.faults.script("place", FaultKind.SERVER_ERROR)
    with pytest.raises(errors.VenueServerError) as exc:
        place(venue, "f-5xx")
    assert exc.value.http_status == 503
    assert not exists(venue, "f-5xx")


def test_place_with_connect_timeout_never_reaches_venue(venue: Venue) -> None:
    used = venue.used_weight()
    venue.faults.script("place", FaultKind.CONNECT_TIMEOUT)
    with pytest.raises(errors.VenueTimeout) as exc:
        place(venue, "f-conn")
    assert exc.value.reached_venue is False
    assert exc.value.accepted is False
    assert venue.used_weight() == used  # nothing reached the venue, nothing was charged
    assert not exists(venue, "f-conn")


def test_place_with_timeout_before_accept_times_out_without_order(venue: Venue) -> None:
    venue.faults.script("place", FaultKind.TIMEOUT_BEFORE_ACCEPT)
    with pytest.raises(errors.VenueTimeout) as exc:
        place(venue, "f-tb")
    assert exc.value.reached_venue is True
    assert exc.value.accepted is False
    assert not exists(venue, "f-tb")


def test_place_with_timeout_after_accept_times_out_but_order_exists(venue: Venue) -> None:
    venue.faults.script("place", FaultKind.TIMEOUT_AFTER_ACCEPT)
    with pytest.raises(errors.VenueTimeout) as exc:
        place(venue, "f-ta")
    assert exc.value.accepted is True
    assert not isinstance(exc.value, errors.AckDropped)
    assert exists(venue, "f-ta")


def test_place_with_dropped_ack_raises_ack_dropped_but_order_exists(venue: Venue) -> None:
    venue.faults.script("place", FaultKind.DROPPED_ACK)
    with pytest.raises(errors.AckDropped):
        place(venue, "f-ack")
    assert exists(venue, "f-ack")


def test_scripted_fault_with_nth_call_hits_only_that_call(venue: Venue) -> None:
    venue.faults.script("cancel", FaultKind.SERVER_ERROR, nth=2)
    a, b = place(venue, "n-1"), place(venue, "n-2")
    venue.cancel_order(SPOT, SYM, order_id=a.order_id)
    with pytest.raises(errors.VenueServerError):
        venue.cancel_order(SPOT, SYM, order_id=b.order_id)
    assert venue.cancel_order(SPOT, SYM, order_id=b.order_id).order_id == b.order_id


def test_report_with_delay_fault_is_held_until_clock_passes(
    venue: Venue, clock: ManualClock
) -> None:
    venue.feed.drain()
    venue.faults.script("report", FaultKind.DELAYED_REPORT)
    order = place(venue, "d-1")
    assert [e for e in venue.feed.drain() if e.order and e.order.order_id == order.order_id] == []
    venue.advance(1_999)
    assert venue.feed.drain() == []
    venue.advance(1)
    late = venue.feed.drain()
    assert [(e.execution_type, e.order.order_id if e.order else None) for e in late] == [
        ("NEW", order.order_id)
    ]


def test_report_with_duplicate_fault_is_delivered_twice_with_same_seq(venue: Venue) -> None:
    venue.feed.drain()
    venue.faults.script("report", FaultKind.DUPLICATE_REPORT)
    venue.place_order(SPOT, SYM, Side.BUY, OrderType.MARKET, D("0.5"))
    events = venue.feed.drain()
    assert [e.execution_type for e in events] == ["NEW", "NEW", "TRADE"]
    assert events[0] == events[1]
    seen: list[object] = []
    venue.feed.subscribe(seen.append)
    venue.faults.script("report", FaultKind.DUPLICATE_REPORT)
    venue.place_order(SPOT, SYM, Side.BUY, OrderType.MARKET, D("0.5"))
    assert len(seen) == 3


def test_requests_with_weight_over_minute_limit_get_429_until_next_minute(
    make_venue, clock: ManualClock
) -> None:
    venue = make_venue(weight_limit_per_minute=10)
    clock.set(clock.now_ms() // 60_000 * 60_000 + 45_000)  # 15 s left in this minute
    for i in range(6):
        place(venue, f"w-{i}")  # weight 1 each
    venue.get_order(SPOT, SYM, client_order_id="w-0")  # weight 4: 10 used
    assert venue.used_weight() == 10
    with pytest.raises(errors.RateLimitExceeded) as exc:
        place(venue, "w-over")
    assert exc.value.retry_after_s == 15.0
    assert exc.value.used_weight == 10
    venue.advance(15_000)
    assert place(venue, "w-next").client_order_id == "w-next"
    assert venue.used_weight() == 1


def test_futures_requests_weigh_what_binance_usdm_charges_not_the_spot_weights(
    make_venue,
) -> None:
    # Charged at spot weights (GET order 4, trades 20, depth 5) the futures traffic of the proof
    # ran out of budget several times sooner than on the real venue.
    venue = make_venue()
    fut = Market.FUT
    venue.book(fut, SYM, 5)
    venue.my_trades(fut, SYM)
    venue.positions()
    assert venue.used_weight() == 2 + 5 + 5
    venue.book(SPOT, SYM, 5)
    venue.my_trades(SPOT, SYM)
    assert venue.used_weight() == 12 + 5 + 20


def run_plan(seed: int) -> list[tuple[str, int, FaultKind]]:
    inj = FaultInjector(
        FaultPlan(
            probabilities={
                "*": {FaultKind.SERVER_ERROR: 0.1, FaultKind.RATE_LIMIT: 0.1},
                "place": {FaultKind.DROPPED_ACK: 0.1, FaultKind.TIMEOUT_AFTER_ACCEPT: 0.05},
                "report": {FaultKind.DUPLICATE_REPORT: 0.2},
            }
        ),
        seed=seed,
    )
    for i in range(300):
        inj.next_fault(("place", "cancel", "query", "report")[i % 4])
    return [(f.op, f.call, f.kind) for f in inj.history]


def test_fault_plan_with_same_seed_yields_same_faults() -> None:
    first = run_plan(7)
    assert first == run_plan(7)
    assert first != run_plan(8)
    kinds = {k for _, _, k in first}
    assert FaultKind.DUPLICATE_REPORT in kinds
    assert FaultKind.DROPPED_ACK in kinds
    # Report faults stay on the report feed; request faults never land there.
    assert all((op == "report") == k.is_report_fault for op, _, k in first)


def test_venue_with_same_seed_and_calls_reproduces_fault_outcomes(make_venue) -> None:
    def outcomes(seed: int) -> list[str]:
        plan = FaultPlan(probabilities={"place": {FaultKind.SERVER_ERROR: 0.3}})
        v = make_venue(faults=plan, seed=seed)
        out = []
        for i in range(30):
            try:
                place(v, f"s-{i}")
                out.append("ok")
            except errors.VenueServerError:
                out.append("5xx")
        return out

    a = outcomes(3)
    assert a == outcomes(3)
    assert "5xx" in a
    assert "ok" in a


def test_fault_plan_with_report_kind_on_request_op_rejected() -> None:
    with pytest.raises(ValueError):
        FaultPlan(probabilities={"place": {FaultKind.DELAYED_REPORT: 0.1}})
    with pytest.raises(ValueError):
        FaultPlan(probabilities={"place": {FaultKind.SERVER_ERROR: 0.7, FaultKind.RATE_LIMIT: 0.5}})
    inj = FaultInjector(FaultPlan(scripted=[ScriptedFault("query", FaultKind.RATE_LIMIT, nth=2)]))
    assert inj.next_fault("query") is None
    fault = inj.next_fault("query")
    assert fault is not None
    assert fault.kind is FaultKind.RATE_LIMIT


def test_subscriber_with_fill_receives_new_then_trade_reports(venue: Venue) -> None:
    got: list[str] = []
    unsubscribe = venue.feed.subscribe(lambda e: got.append(e.execution_type))
    venue.place_order(SPOT, SYM, Side.BUY, OrderType.MARKET, D("0.5"))
    unsubscribe()
    venue.place_order(SPOT, SYM, Side.BUY, OrderType.MARKET, D("0.5"))
    assert got == ["NEW", "TRADE"]
