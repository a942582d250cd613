"""Decimal helpers: money and quantities are never floats inside the system."""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
BPS = Decimal(10_000)
