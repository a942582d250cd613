"""Linked orders: orders whose lives depend on each other share a `link_group`.

* OCO (one cancels the other): the two legs of a spot OCO, or a FUT stop-loss + take-profit
  pair. Any fill (even partial) or trigger of one leg ⇒ every other live leg must be cancelled.
* OTO (one triggers the other): protective orders are placed once their entry has filled.

Each leg is an ordinary order of the state machine in :mod:`.order` (its own client order id,
status and fills); the link only adds these rules. The protective-orders work builds the
guardian on them; the router refuses intents that need them until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradekit.enums import Contingency, OrderStatus


@dataclass(frozen=True, slots=True)
class Leg:
    client_order_id: str
    status: OrderStatus
    filled_qty: Decimal = Decimal(0)
    triggered: bool = False

    @property
    def engaged(self) -> bool:
        """The leg has acted: filled (partly) or triggered."""
        return self.filled_qty > 0 or self.status is OrderStatus.FILLED or self.triggered


def legs_to_cancel(contingency: Contingency, legs: Sequence[Leg]) -> list[str]:
    """The live legs that must be cancelled now."""
    if contingency is not Contingency.OCO:
        return []
    if not any(leg.engaged for leg in legs):
        return []
    return [leg.client_order_id for leg in legs if not leg.engaged and not leg.status.is_terminal]


def oco_anomaly(legs: Sequence[Leg]) -> bool:
    """More than one leg of an OCO has acted: the guardian lost a race (alert)."""
    return sum(1 for leg in legs if leg.engaged) > 1
