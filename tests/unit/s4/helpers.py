"""Shared builders for the S4 policy tests (pure: no Redis, no venue, no sleeps)."""

from __future__ import annotations

from decimal import Decimal as D

from s4_router.policies.model import Book, ChildReport, Command, Place, RejectKind
from tradekit.enums import OrderStatus
from tradekit.instrument import Instrument

BTC = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    tickSize=D(1),
    stepSize=D("0.001"),
    minNotional=D(5),
    spread_bp_limit=D(3),
    depth_top1_usdt_min=D(200),
)


def book(bid: str = "64999", ask: str = "65001", qty: str = "2", ts: int = 0) -> Book:
    return Book(ts=ts, bids=((D(bid), D(qty)),), asks=((D(ask), D(qty)),))


def places(cmds: list[Command]) -> list[Place]:
    return [c for c in cmds if isinstance(c, Place)]


def report(
    child_id: str,
    status: OrderStatus,
    filled: str = "0",
    reject: RejectKind | None = None,
) -> ChildReport:
    return ChildReport(child_id, status, D(filled), reject, "test")
