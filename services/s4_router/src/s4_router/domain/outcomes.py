"""What became of an intake or a cancel request, said without a transport.

The service layer answers with an :class:`Outcome`: the reply body (tradekit's `OrderResponse`)
and its :class:`Disposition`. Only the entry points turn a disposition into a transport's
terms: `entrypoints/statuses.py` into an HTTP status for the REST API, the `orders:intent`
consumer into "acknowledge" or "dead-letter" (a refusal that stored nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tradekit.enums import RequestResult
from tradekit.orders import OrderResponse


class Disposition(StrEnum):
    DONE = "done"
    """Finished (filled, cancelled, rejected by the venue), or a resend of a known order."""
    RUNNING = "running"
    """Durably accepted (or a cancel recorded) and still executing."""
    INVALID = "invalid"
    """Refused on the request's own content (shape, limits, pre-trade checks)."""
    CONFLICT = "conflict"
    """Refused: contradicts a stored order (reused id, already final) or the venue's state."""
    UNKNOWN = "unknown"
    """Names no order."""
    UNAVAILABLE = "unavailable"
    """Refused for now (breaker, clock skew, halt, venue or infrastructure down): retry later."""

    @property
    def refused_for_content(self) -> bool:
        """The request itself is at fault: sending it again unchanged cannot succeed."""
        return self in (Disposition.INVALID, Disposition.CONFLICT, Disposition.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Outcome:
    response: OrderResponse
    kind: Disposition = Disposition.DONE

    @classmethod
    def of(cls, kind: Disposition, coid: str | None, *, ok: bool = False, **fields: Any) -> Outcome:
        """The answer about order `coid`: FAIL unless `ok`; `order_ids` defaults to `[coid]`."""
        fields.setdefault("order_ids", [coid] if coid else [])
        result = RequestResult.OK if ok else RequestResult.FAIL
        return cls(OrderResponse(result=result, client_order_id=coid, **fields), kind)
