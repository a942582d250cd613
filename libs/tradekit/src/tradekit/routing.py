"""The route table (spec 004 §G): notional bands → maker wait and TWAP slicing.

One schema for every reader — the seed (fixtures), S3 (the exec_policy it attaches to an intent)
and S4 (`S4_ROUTE_TABLE_PATH`, hot-reloaded) — so a table one accepts the others accept too.

A table is a non-empty JSON array of bands, ascending by `notional_usdt_max` (> 0); only the last
may be `null` (unbounded). A band covers notionals up to and including its cap. `twap` absent
means one slice (no TWAP).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

MAX_MAKER_WAIT_MS = 600_000
MAX_TWAP_SLICES = 99
MAX_BANDS = 64


class TwapBand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    slices: int = Field(ge=1, le=MAX_TWAP_SLICES)
    gap_ms: int = Field(ge=0)
    # Each slice is due at start + i·gap ± jitter·gap (S4's TWAP schedule).
    jitter_pct: Decimal = Field(default=Decimal("0.1"), ge=0, le=Decimal("0.5"))


class RouteBand(BaseModel):
    """One row; `notional_usdt_max` None = unbounded (the last band only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notional_usdt_max: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None = None
    maker_wait_ms: int = Field(ge=0, le=MAX_MAKER_WAIT_MS)
    twap: TwapBand = TwapBand(slices=1, gap_ms=0)


class RouteBands(RootModel[tuple[RouteBand, ...]]):
    """The whole table: validate with `RouteBands.model_validate(json_array)`."""

    model_config = ConfigDict(frozen=True)

    root: tuple[RouteBand, ...] = Field(min_length=1, max_length=MAX_BANDS)

    @model_validator(mode="after")
    def _ascending(self) -> RouteBands:
        bands = self.root
        for i, band in enumerate(bands):
            cap = band.notional_usdt_max
            if cap is None:
                if i != len(bands) - 1:
                    raise ValueError(f"band {i} is unbounded but not the last")
            elif i:
                prev = bands[i - 1].notional_usdt_max
                if prev is not None and cap <= prev:
                    raise ValueError(f"band {i} max {cap} is not above {prev}")
        return self
