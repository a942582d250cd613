"""Order state machine: the transition table is the single authority on what may happen.

Late fills are legal on CANCELED/EXPIRED orders (a fill can race a cancel at the venue): the
status stays terminal but the fill is recorded and counted.
"""

from __future__ import annotations

from tradekit.enums import OrderStatus as S


class IllegalTransition(Exception):
    def __init__(self, src: S, dst: S) -> None:
        super().__init__(f"illegal order transition {src} -> {dst}")
        self.src, self.dst = src, dst


TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED}),
    S.SUBMITTED: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.EXPIRED, S.CANCELED, S.AMBIGUOUS}
    ),
    S.AMBIGUOUS: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.EXPIRED, S.CANCELED, S.SUBMITTED}
    ),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}
    ),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


def can_transition(src: S, dst: S) -> bool:
    return dst in TRANSITIONS[src]


def check_transition(src: S, dst: S) -> S:
    if src == dst and src.is_terminal:
        return dst  # idempotent re-report of a terminal state
    if not can_transition(src, dst):
        raise IllegalTransition(src, dst)
    return dst
