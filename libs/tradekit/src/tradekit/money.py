"""Decimal helpers: money and quantities are never floats inside the system."""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)


def bps(part: Decimal, whole: Decimal) -> Decimal:
    """part/whole in basis points."""
    return part / whole * BPS
