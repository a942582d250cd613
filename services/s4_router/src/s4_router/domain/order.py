"""Order state machine: the transition table is the single authority on what may happen.

    NEW ──► SUBMITTED ──► ACCEPTED ──► PARTIALLY_FILLED ──► FILLED
     │          │  ▲          │               │
     │          ▼  │          └──► PENDING_CANCEL ──► CANCELED / EXPIRED / FILLED
     │       AMBIGUOUS (timeout / dropped ack: resolved only from venue evidence)
     └──► REJECTED / CANCELED / EXPIRED (a parent can end before any child was sent)

Parents (the intent) and children (`{client_order_id}-E{n}`) share the table. Late fills are
legal on CANCELED/EXPIRED orders (a fill can race a cancel at the venue): the status stays
terminal but the fill is recorded and counted (:mod:`s4_router.domain.fills`).
"""

from __future__ import annotations

from tradekit.enums import OrderStatus as S


class IllegalTransition(Exception):
    pass


# A sent order whose fate is not known yet (SUBMITTED, AMBIGUOUS) may become any of these.
_SENT = frozenset(
    {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.EXPIRED, S.CANCELED, S.PENDING_CANCEL}
)
TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELED, S.PENDING_CANCEL, S.EXPIRED}),
    S.SUBMITTED: _SENT | {S.AMBIGUOUS},
    S.AMBIGUOUS: _SENT | {S.SUBMITTED},
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

LIVE = tuple(st for st in S if not st.is_terminal)  # the statuses an order can still leave

# How far along the life cycle a live status is: a venue report "behind" what we already know
# (ACCEPTED after PARTIALLY_FILLED: reports cross on the wire) is stale, not a transition.
_PROGRESS: dict[S, int] = {
    S.NEW: 0,
    S.SUBMITTED: 1,
    S.AMBIGUOUS: 1,
    S.ACCEPTED: 2,
    S.PARTIALLY_FILLED: 3,
    S.PENDING_CANCEL: 4,
}


def can_transition(src: S, dst: S) -> bool:
    return dst in TRANSITIONS[src]


def reconcile_status(current: S, reported: S) -> S:
    """The status to keep when the venue reports `reported` for an order we hold at `current`.

    Equal ⇒ unchanged; a legal transition ⇒ `reported`; a terminal `current` ⇒ unchanged (a
    late report, e.g. a fill after the cancel ack); a report behind what we know ⇒ unchanged;
    a PENDING_CANCEL order keeps its status on a partial fill (the cancel ack ends it).
    Anything else is an IllegalTransition (a bug or a venue we misread).
    """
    if reported == current or current.is_terminal:
        return current
    if current is S.PENDING_CANCEL and reported in (S.PARTIALLY_FILLED, S.ACCEPTED):
        return current
    if can_transition(current, reported):
        return reported
    if not reported.is_terminal and _PROGRESS.get(reported, 0) <= _PROGRESS.get(current, 0):
        return current
    raise IllegalTransition(f"illegal order transition {current} -> {reported}")
