"""`GET /sim/orders` (only with `S4_EXCHANGE=sim`): the in-process venue's own orders.

The simulator's ground truth, not S4's records: every order the venue ever accepted (a client
order id accepted twice shows twice), so anyone can check S4's `orders` and `fills` against
what the venue really did. A plain APIRouter: the app's own dependencies (authentication)
cover it like every other route.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict

from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.entrypoints.deps import ContainerDep
from venue.records import order_records

router = APIRouter(prefix="/sim", tags=["simulator"])


class SimOrder(BaseModel):
    model_config = ConfigDict(extra="allow")

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    status: str
    executed_qty: str


class SimOrders(BaseModel):
    orders: list[SimOrder]


@router.get("/orders", response_model=SimOrders)
async def sim_orders(c: ContainerDep) -> dict[str, Any]:
    """Every order the in-process venue simulator accepted (its records, not S4's)."""
    if not isinstance(c.exchange, SimExchange):
        raise HTTPException(404, "no in-process venue simulator (S4_EXCHANGE is not sim)")
    return {"orders": order_records(c.exchange.sim)}
