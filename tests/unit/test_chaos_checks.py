"""The chaos campaign's checks (`tests.chaos.campaign.find_violations`) on hand-made evidence:
each violation the issue names is detected with its evidence, a clean scenario yields none,
and scenarios are a pure function of the seed (replayable)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from tests.chaos.campaign import (
    Evidence,
    IntentPlan,
    Scenario,
    find_violations,
    make_scenario,
)

D = Decimal
P = "k1-0-0"


def plan(*, qty: str = "0.002", bracket: bool = False) -> IntentPlan:
    body = {"client_order_id": P, "qty": qty, "symbol": "BTCUSDT", "side": "BUY"}
    return IntentPlan(body=body, path="rest", bracket=bracket)


def vorder(cid: str, vid: str, executed: str, status: str = "FILLED") -> dict[str, Any]:
    return {
        "client_order_id": cid,
        "venue_order_id": vid,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "status": status,
        "executed_qty": executed,
        "type": "MARKET",
    }


def trade(vid: str, tid: str, qty: str) -> dict[str, Any]:
    return {"venue_order_id": vid, "trade_id": tid, "qty": qty}


def fill(vid: str, tid: str, qty: str, cid: str = f"{P}-E1") -> dict[str, Any]:
    return {
        "order_id": vid,
        "trade_id": tid,
        "qty": qty,
        "client_order_id": cid,
        "parent_client_order_id": P,
    }


def stored(filled: str, status: str = "FILLED", child_vid: str = "1") -> list[dict[str, Any]]:
    return [
        {"client_order_id": P, "status": status, "filled_qty": filled},
        {
            "client_order_id": f"{P}-E1",
            "parent_client_order_id": P,
            "status": "FILLED",
            "filled_qty": filled,
            "venue_order_id": child_vid,
        },
    ]


def check(ev: Evidence, *, final: str = "FILLED", p: IntentPlan | None = None) -> list[str]:
    sc = Scenario(0, "market", "k1-0-", [p or plan()])
    return sorted(v.kind for v in find_violations(sc, sc.intents, {P: final}, ev, timeout_s=60))


def clean(**over: Any) -> Evidence:
    base: dict[str, Any] = {
        "orders": [vorder(f"{P}-E1", "1", "0.002")],
        "trades": [trade("1", "11", "0.002")],
        "algos": [],
        "stored": stored("0.002"),
        "fills": [fill("1", "11", "0.002")],
        "executed": Counter({P: 1}),
    }
    base.update(over)
    return Evidence(**base)


def test_a_scenario_whose_store_matches_the_venue_has_no_violation() -> None:
    assert check(clean()) == []


def test_a_child_id_sent_twice_is_a_duplicate_an_overfill_and_an_unbooked_fill() -> None:
    ev = clean(
        orders=[vorder(f"{P}-E1", "1", "0.002"), vorder(f"{P}-E1", "2", "0.002")],
        trades=[trade("1", "11", "0.002"), trade("2", "12", "0.002")],
    )
    assert check(ev) == [
        "DUPLICATE_CHILD_ID",
        "FILL_MISSING",
        "OVERFILL",
        "PARENT_QTY_MISMATCH",
    ]


def test_fills_must_be_stored_exactly_once_and_only_when_the_venue_executed_them() -> None:
    assert check(clean(fills=[fill("1", "11", "0.002"), fill("1", "11", "0.002")])) == [
        "FILL_DUPLICATE",
        "PARENT_QTY_MISMATCH",
    ]
    phantom = clean(fills=[fill("1", "11", "0.002"), fill("9", "99", "0.001")])
    assert "FILL_PHANTOM" in check(phantom)


def test_child_state_must_equal_the_venues() -> None:
    ev = clean(stored=[stored("0.002")[0], {**stored("0.002")[1], "status": "SUBMITTED"}])
    assert check(ev) == ["CHILD_STATE_MISMATCH"]
    assert check(clean(stored=stored("0.002")[:1])) == ["VENUE_ORDER_UNKNOWN"]


def test_outcome_events_exactly_one_and_intents_must_end() -> None:
    assert check(clean(executed=Counter({P: 2}))) == ["OUTCOME_EVENTS"]
    assert check(clean(executed=Counter())) == ["OUTCOME_EVENTS"]
    refused = clean(
        orders=[], trades=[], fills=[], stored=stored("0", "REJECTED")[:1], executed=Counter()
    )
    assert check(refused, final="REJECTED") == []  # refused before any side effect
    assert check(clean(executed=Counter()), final="PARTIALLY_FILLED") == ["NOT_FINAL"]
    assert check(clean(), final="DLQ") == []


def test_a_filled_bracketed_entry_must_carry_its_stop_at_the_venue() -> None:
    tp = {
        "client_algo_id": f"{P}-E61",
        "type": "TAKE_PROFIT_MARKET",
        "status": "NEW",
        "qty": "0.002",
        "close_position": False,
    }
    sl = {**tp, "client_algo_id": f"{P}-E60", "type": "STOP_MARKET"}

    def with_algos(*algos: dict[str, Any], store: str = "ACCEPTED") -> Evidence:
        docs = [
            {
                "client_order_id": a["client_algo_id"],
                "parent_client_order_id": P,
                "status": store if a["status"] == "NEW" else "CANCELED",
            }
            for a in algos
        ]
        return clean(algos=list(algos), stored=stored("0.002") + docs)

    bracket = plan(bracket=True)
    assert check(with_algos(tp), p=bracket) == ["NAKED_POSITION"]
    assert check(with_algos(tp, sl), p=bracket) == []
    assert check(with_algos(tp, {**sl, "qty": "0.001"}), p=bracket) == ["NAKED_POSITION"]
    fired = {**sl, "status": "FINISHED"}
    assert check(with_algos({**tp, "status": "CANCELED"}, fired), p=bracket) == []
    # S4 believes its stop gone while the venue still works it (or the other way round)
    assert check(with_algos(tp, sl, store="CANCELED"), p=bracket) == [
        "PROTECTIVE_STATE_MISMATCH",
        "PROTECTIVE_STATE_MISMATCH",
    ]
    assert check(clean(algos=[tp, sl]), p=bracket) == ["VENUE_ORDER_UNKNOWN"] * 2


def test_scenarios_are_a_pure_function_of_the_seed() -> None:
    prices = {"BTCUSDT": D("65000"), "ETHUSDT": D("3400")}
    a = [make_scenario(7, i, prices) for i in range(50)]
    b = [make_scenario(7, i, prices) for i in range(50)]
    c = [make_scenario(8, i, prices) for i in range(50)]
    assert [(s.kind, [p.body for p in s.intents]) for s in a] == [
        (s.kind, [p.body for p in s.intents]) for s in b
    ]
    assert [s.kind for s in a] != [s.kind for s in c]
    kinds = {s.kind for s in a}
    assert {"market", "maker", "twap", "bracket"} <= kinds
    paths = {p.path for s in a for p in s.intents}
    assert paths == {"rest", "stream", "both"}
    assert any(p.parallel_dup for s in a for p in s.intents)
    assert any(p.cancel_after_ms is not None for s in a for p in s.intents)
    assert all(len(p.coid) <= 28 for s in a for p in s.intents)  # room for "-E99" in 32


def test_an_intent_refused_at_the_door_must_leave_no_trace_at_the_venue() -> None:
    nothing = clean(orders=[], trades=[], fills=[], stored=[], executed=Counter())
    assert check(nothing, final="REFUSED") == []
    leaked = clean(stored=[], fills=[], executed=Counter())
    assert check(leaked, final="REFUSED") == ["FILL_MISSING", "VENUE_ORDER_UNKNOWN"]
