"""The facade's ``/sim/...`` routes: the venue's own records (:mod:`venue.records`) over HTTP.

Not part of Binance: a test rig (``make chaos``) reads them to check a router's store against
what the venue really did. They answer only with the facade's API key in ``X-MBX-APIKEY``
(no signature: they change nothing), and cost no request weight.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from svckit.jsonutil import dumpb
from venue import records
from venue.faults import REPORT_OP, FaultKind
from venue.models import Trade
from venue.venue import Venue


def _faults(venue: Venue) -> list[dict[str, Any]]:
    """How many faults of each kind the venue injected so far (per operation)."""
    counts = Counter((f.op, f.kind.value) for f in venue.faults.history)
    return [{"op": op, "kind": kind, "count": n} for (op, kind), n in sorted(counts.items())]


SIM_LISTINGS: dict[str, Callable[[Venue], list[dict[str, Any]]]] = {
    "orders": records.order_records,
    "trades": records.trade_records,
    "algo-orders": records.algo_records,
    "positions": records.position_records,
    "faults": _faults,
}


def _matching(name: str, venue: Venue, rows: list[dict[str, Any]], prefix: str) -> list[Any]:
    """Rows whose client id starts with `prefix`; for trades also those of the orders that
    conditional orders with such an id triggered (those orders get a venue-made id)."""
    if name == "algo-orders":
        return [r for r in rows if r["client_algo_id"].startswith(prefix)]
    if name not in ("orders", "trades"):
        return rows
    triggered = {
        str(a.triggered_order_id)
        for a in venue.algo.orders.values()
        if a.client_algo_id.startswith(prefix) and a.triggered_order_id is not None
    }
    return [
        r
        for r in rows
        if r["client_order_id"].startswith(prefix) or r["venue_order_id"] in triggered
    ]


def report_faults(venue: Venue, trades: list[Trade]) -> list[Trade]:
    """The execution-report faults of the venue's profile, as a REST client meets them in a
    trade listing (`myTrades` / `userTrades`): DUPLICATE_REPORT repeats a row, DELAYED_REPORT
    holds back the executions younger than the report delay (they show up in a later call:
    the listing lags the order's status) and answers the rest out of order."""
    if not venue.faults.plan.probabilities.get(REPORT_OP):
        return trades
    fault = venue.faults.next_fault(REPORT_OP)
    if fault is None or not trades:
        return trades
    if fault.kind is FaultKind.DUPLICATE_REPORT:
        return [*trades, trades[-1]]
    cutoff = venue.clock.now_ms() - fault.delay_ms
    return [t for t in trades if t.ts <= cutoff][::-1]


def add_sim_routes(app: FastAPI, venue: Venue, *, lock: threading.RLock, api_key: str) -> None:
    """`GET /sim/orders|trades|algo-orders|positions|faults` → `{"<name>": [...]}`; `?prefix=`
    keeps the rows of client ids starting with it (a rig's scenario)."""

    def make(name: str, listing: Callable[[Venue], list[dict[str, Any]]]) -> Any:
        key = name.replace("-", "_")

        async def endpoint(request: Request) -> Response:
            if request.headers.get("x-mbx-apikey") != api_key:
                body = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
                return Response(dumpb(body), status_code=401, media_type="application/json")
            prefix = request.query_params.get("prefix")
            with lock:
                rows = listing(venue)
                if prefix:
                    rows = _matching(name, venue, rows, prefix)
            return Response(dumpb({key: rows}), media_type="application/json")

        endpoint.__name__ = f"sim_{key}"
        return endpoint

    for name, listing in SIM_LISTINGS.items():
        app.add_api_route(
            f"/sim/{name}", make(name, listing), methods=["GET"], include_in_schema=False
        )


__all__ = ["SIM_LISTINGS", "add_sim_routes", "report_faults"]
