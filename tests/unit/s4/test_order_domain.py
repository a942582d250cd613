"""Order transition table, fill ledger."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from s4_router.domain.fills import FillLedger
from s4_router.domain.order import TRANSITIONS, can_transition, reconcile_status
from tradekit.enums import OrderStatus as S


def test_transition_table_with_every_status_is_complete_and_terminals_are_final() -> None:
    assert set(TRANSITIONS) == set(S)
    for st in S:
        if st.is_terminal:
            assert TRANSITIONS[st] == frozenset()


@pytest.mark.parametrize(
    ("src", "dst"),
    [(S.FILLED, S.CANCELED), (S.NEW, S.FILLED), (S.CANCELED, S.ACCEPTED), (S.ACCEPTED, S.NEW)],
)
def test_can_transition_with_illegal_move_is_false(src: S, dst: S) -> None:
    assert not can_transition(src, dst)


def test_can_transition_with_ambiguous_resolution_is_true() -> None:
    assert can_transition(S.SUBMITTED, S.AMBIGUOUS)
    assert can_transition(S.AMBIGUOUS, S.FILLED)


@pytest.mark.parametrize(
    ("current", "reported", "kept"),
    [
        (S.PARTIALLY_FILLED, S.ACCEPTED, S.PARTIALLY_FILLED),  # stale report
        (S.CANCELED, S.FILLED, S.CANCELED),  # late report on a terminal order
        (S.PENDING_CANCEL, S.PARTIALLY_FILLED, S.PENDING_CANCEL),
        (S.PENDING_CANCEL, S.CANCELED, S.CANCELED),
        (S.SUBMITTED, S.FILLED, S.FILLED),
        (S.AMBIGUOUS, S.ACCEPTED, S.ACCEPTED),
    ],
)
def test_reconcile_status_with_venue_report_keeps_or_moves(
    current: S, reported: S, kept: S
) -> None:
    assert reconcile_status(current, reported) is kept


def test_fill_ledger_with_duplicate_and_overfill_books_each_fill_once_within_qty() -> None:
    led = FillLedger(D("0.003"))
    led.book(("sim", "1", "t1"), D("0.001"))
    assert not led.overfills(("sim", "1", "t1"), D("0.001"))  # a duplicate counts once
    led.book(("sim", "1", "t1"), D("0.001"))
    assert led.filled == D("0.001")
    assert not led.overfills(("sim", "1", "t2"), D("0.001"))
    led.book(("sim", "1", "t2"), D("0.001"))
    assert led.overfills(("sim", "1", "t3"), D("0.002"))
    assert not led.overfills(("sim", "1", "t4"), D("0.001"))
    led.book(("sim", "1", "t4"), D("0.001"))
    assert led.filled == led.qty == D("0.003")
