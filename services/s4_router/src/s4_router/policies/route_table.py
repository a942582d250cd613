"""The route table (spec 004 §G, `S4_ROUTE_TABLE_PATH`): notional bands → maker wait and TWAP.

The schema (bands ascending, only the last unbounded, bounds on waits and slices) is
`tradekit.routing`, shared with S3 and the seed. Bands are checked in order; a band covers
notionals up to and including `notional_usdt_max`. A notional above a bounded last band uses the
last band (the most careful one) rather than failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from tradekit.routing import RouteBand, RouteBands

__all__ = ["RouteBand", "RouteTable", "RouteTableError"]


class RouteTableError(ValueError):
    pass


@dataclass(frozen=True)
class RouteTable:
    bands: tuple[RouteBand, ...]
    rev: str

    @classmethod
    def parse(cls, data: Any, *, rev: str) -> RouteTable:
        try:
            return cls(RouteBands.model_validate(data).root, rev)
        except ValidationError as exc:
            raise RouteTableError(f"route table: {exc}") from None

    def band_for(self, notional: Decimal) -> tuple[int, RouteBand]:
        for i, band in enumerate(self.bands):
            if band.notional_usdt_max is None or notional <= band.notional_usdt_max:
                return i, band
        return len(self.bands) - 1, self.bands[-1]
