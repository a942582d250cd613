"""The venue's own records, as plain JSON-ready rows: what a rig checks the router against.

Not a Binance endpoint: the simulator's ground truth (every order it ever accepted, every
execution, every conditional order, the positions), outside the request path (no weight, no
injected faults). Served by S4 as ``GET /sim/orders`` when ``S4_EXCHANGE=sim`` and by the
facade process under ``/sim/...``. Numbers are strings (exact decimals), like Binance's. A
client order id the venue accepted twice (the first copy had closed) shows as two order rows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from venue.venue import Venue


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def order_records(venue: Venue) -> list[dict[str, Any]]:
    """Every spot and futures order the venue accepted, in acceptance order per market."""
    return [
        {
            "client_order_id": o.client_order_id,
            "venue_order_id": str(o.order_id),
            "symbol": o.symbol,
            "side": o.side.value,
            "status": o.status.value,
            "executed_qty": _s(o.filled_qty),
            "market": o.market.value,
            "type": o.type.value,
            "qty": _s(o.qty),
            "reduce_only": o.reduce_only,
            "created_ts": o.created_ts,
        }
        for engine in (venue.spot, venue.futures)
        for o in engine.orders.values()
    ]


def trade_records(venue: Venue) -> list[dict[str, Any]]:
    """Every execution of our orders (both markets), in execution order per market."""
    return [
        {
            "trade_id": str(t.trade_id),
            "venue_order_id": str(t.order_id),
            "client_order_id": t.client_order_id,
            "market": t.market.value,
            "symbol": t.symbol,
            "side": t.side.value,
            "price": _s(t.price),
            "qty": _s(t.qty),
            "ts": t.ts,
        }
        for engine in (venue.spot, venue.futures)
        for t in engine.trades
    ]


def algo_records(venue: Venue) -> list[dict[str, Any]]:
    """Every futures conditional order (STOP_MARKET / TAKE_PROFIT_MARKET) ever accepted."""
    return [
        {
            "client_algo_id": a.client_algo_id,
            "algo_id": str(a.algo_id),
            "symbol": a.symbol,
            "side": a.side.value,
            "type": a.type.value,
            "status": a.status.value,
            "trigger_price": _s(a.trigger_price),
            "qty": _s(a.qty),
            "reduce_only": a.reduce_only,
            "close_position": a.close_position,
            "triggered_order_id": (
                None if a.triggered_order_id is None else str(a.triggered_order_id)
            ),
        }
        for a in venue.algo.orders.values()
    ]


def position_records(venue: Venue) -> list[dict[str, Any]]:
    """Open futures positions (signed quantity: > 0 long)."""
    return [
        {
            "symbol": p.symbol,
            "qty": _s(p.qty),
            "entry_price": _s(p.entry_price),
            "margin_type": p.margin_type.value,
            "leverage": p.leverage,
        }
        for p in venue.futures_account.positions()
    ]


__all__ = ["algo_records", "order_records", "position_records", "trade_records"]
