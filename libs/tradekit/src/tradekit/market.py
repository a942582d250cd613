"""Market-data payloads published on Redis (`mkt:tick:{symbol}`, `mkt:depth:{symbol}`,
`feat:last:{symbol}`). Values are JSON strings holding these models."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from tradekit.base import Payload


class Tick(Payload):
    symbol: str
    ts: int = Field(description="epoch ms")
    bid: Decimal
    ask: Decimal
    bid_qty: Decimal
    ask_qty: Decimal
    last: Decimal | None = None
    mark: Decimal | None = None

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


class DepthSnapshot(Payload):
    symbol: str
    ts: int
    bids: list[tuple[Decimal, Decimal]]  # best first
    asks: list[tuple[Decimal, Decimal]]


class FeatureSnapshot(Payload):
    """`feat:last:{symbol}`: flat numeric features plus their timestamp (epoch ms).

    The set of feature names is open (it is whatever `factor_registry` whitelists), so the
    values are a mapping; the JSON on Redis is flat: {"symbol":..,"ts":..,"mid":..,...}.
    """

    symbol: str
    ts: int
    values: dict[str, float]


class MarketStep(Payload):
    """One step of a venue's public market data for one symbol: the book after the step (best
    first), the tape's prints during it as ``(ts, price, qty)``, and for a futures symbol the
    funding rate and mark price. The simulator publishes these on the `sim:market` stream (it
    is the venue's public feed when the venue is simulated inside S4); the market-data feeder
    turns them into `mkt:tick`, `mkt:depth` and `feat:last`."""

    symbol: str
    ts: int = Field(description="epoch ms")
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    prints: list[tuple[int, Decimal, Decimal]] = Field(default_factory=list)
    funding_rate: Decimal | None = None
    mark: Decimal | None = None
