"""Domain exception tree (pure). Infrastructure errors live in svckit.errors."""

from __future__ import annotations


class InvalidIntent(Exception):
    """An intent that can never be executed as given (bad field, unknown symbol, filters)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RoundsToZero(InvalidIntent):
    """A non-zero quantity that rounds to zero on the instrument's step."""


class BelowMinNotional(InvalidIntent):
    """qty * price below the instrument's minNotional."""
