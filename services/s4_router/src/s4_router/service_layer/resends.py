"""Intake idempotency: the same `client_order_id` again, on either path (REST, stream).

An identical resend (before or after completion) is answered with the existing order and sends
nothing; the same id with a different body is a conflict (409) naming the differing fields, with
an `IDEMPOTENCY_CONFLICT` alert — a reused id must never pass for the original. An id another
intake is accepting right now but has not stored yet is *busy* (retryable), never "duplicate".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.publisher import Publisher
from svckit.errors import InfraError
from tradekit.enums import OrderStatus
from tradekit.intents import OrderIntent
from tradekit.orders import OrderRecord

S = OrderStatus
NOT_COMPARED = frozenset({"created_ts"})  # intent fields a resend may carry differently


class IntakeBusy(InfraError):
    """The same intent is being accepted concurrently and is not stored yet (retryable)."""


@dataclass(kw_only=True, eq=False)
class Resends:
    orders: OrdersRepository
    metrics: RouterMetrics
    publisher: Publisher

    async def stored_or_busy(self, intent: OrderIntent, source: str) -> Outcome:
        stored = await self.orders.get(intent.client_order_id)
        if stored is not None:
            return await self.answer(stored, intent, source)
        # Another intake holds the lease but has stored nothing yet. Answering "duplicate"
        # would let the stream acknowledge an intent whose other copy may still die before
        # being stored: answer "busy" instead (the stream entry stays pending and comes back,
        # REST gets a 503 and retries); by then it is stored, or its lease has expired.
        raise IntakeBusy(f"{intent.client_order_id}: being accepted by another request; retry")

    async def answer(self, stored: OrderRecord, intent: OrderIntent, source: str) -> Outcome:
        # created_ts is when the sender stamped this copy (a retry may re-stamp it): not part
        # of what the order is.
        differing = [
            f
            for f in differing_fields(stored.intent, intent.model_dump(mode="json"))
            if f not in NOT_COMPARED
        ]
        if not differing:
            self.metrics.duplicates.inc()
            self.metrics.intents.labels(source, "duplicate").inc()
            return Outcome.of(
                Disposition.DONE,
                stored.client_order_id,
                ok=stored.status is not S.REJECTED,
                message="duplicate client_order_id: existing order returned, nothing sent",
                status=stored.status,
                duplicate=True,
                filled_qty=stored.filled_qty,
            )
        coid = intent.client_order_id
        self.metrics.intents.labels(source, "conflict").inc()
        message = (
            f"client_order_id {coid!r} already names another order; differing fields: "
            f"{', '.join(differing)}; nothing sent"
        )
        await self.publisher.alert(
            "IDEMPOTENCY_CONFLICT",
            f"{coid} ({source}): {message}",
            data={"client_order_id": coid, "fields": differing, "source": source},
        )
        return Outcome.of(Disposition.CONFLICT, coid, message=message, status=stored.status)


def differing_fields(stored: Any, new: dict[str, Any], prefix: str = "") -> list[str]:
    """Paths of the fields whose values differ between the stored intent and a new one (a child
    record, which has no intent, compares equal: it is answered as the order it names)."""
    if not isinstance(stored, dict):
        return []
    out: list[str] = []
    for name in sorted(set(stored) | set(new)):
        a, b = stored.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(differing_fields(a, b, f"{prefix}{name}."))
        elif a != b:
            out.append(f"{prefix}{name}")
    return out
