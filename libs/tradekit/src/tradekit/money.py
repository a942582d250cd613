"""Decimal helpers: money and quantities are never floats inside the system."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)


def to_decimal(value: Decimal | int | float | str) -> Decimal:
    """Convert without binary-float artefacts (0.1 -> Decimal('0.1'), not 0.1000000000000000055)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - message path
        raise ValueError(f"not a number: {value!r}") from exc


def bps(part: Decimal, whole: Decimal) -> Decimal:
    """part/whole in basis points."""
    return part / whole * BPS
