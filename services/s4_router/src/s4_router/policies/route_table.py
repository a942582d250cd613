"""The route table (spec 004 §G, `S4_ROUTE_TABLE_PATH`): notional bands → maker wait and TWAP.

Bands are checked in order; a band covers notionals up to and including `notional_usdt_max`.
`null` in the last band means unbounded. A notional above a bounded last band uses the last
band (the most careful one) rather than failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from s4_router.policies.twap import TwapPlan


class RouteBand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    notional_usdt_max: Decimal | None = Field(default=None, gt=0)
    maker_wait_ms: int = Field(ge=0, le=600_000)
    twap: TwapPlan = Field(default_factory=lambda: TwapPlan(slices=1, gap_ms=0))


class RouteTableError(ValueError):
    pass


class RouteTable:
    def __init__(self, bands: Sequence[RouteBand], *, rev: str) -> None:
        if not bands:
            raise RouteTableError("route table: no bands")
        for i, band in enumerate(bands):
            last = i == len(bands) - 1
            if band.notional_usdt_max is None and not last:
                raise RouteTableError(f"route table: band {i} is unbounded but not the last")
            if i and band.notional_usdt_max is not None:
                prev = bands[i - 1].notional_usdt_max
                assert prev is not None
                if band.notional_usdt_max <= prev:
                    raise RouteTableError(
                        f"route table: band {i} max {band.notional_usdt_max} is not above {prev}"
                    )
        self.bands = tuple(bands)
        self.rev = rev

    @classmethod
    def parse(cls, data: Any, *, rev: str) -> RouteTable:
        try:
            bands = TypeAdapter(list[RouteBand]).validate_python(data)
        except ValueError as exc:
            raise RouteTableError(f"route table: {exc}") from None
        return cls(bands, rev=rev)

    def band_for(self, notional: Decimal) -> tuple[int, RouteBand]:
        for i, band in enumerate(self.bands):
            if band.notional_usdt_max is None or notional <= band.notional_usdt_max:
                return i, band
        return len(self.bands) - 1, self.bands[-1]
