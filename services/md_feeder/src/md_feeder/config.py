"""Feeder settings: `MD_*` environment variables (pydantic-settings, like S3's and S4's).

The common ones come from :class:`svckit.settings.ServiceSettings` (`MD_REDIS_ADDRESSES`,
`MD_HOST`, `MD_LOG_LEVEL`, ...); the store and token settings there are not used: the feeder
keeps no documents and serves only /health and /metrics.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from svckit.settings import BlankIsNone, CsvList, ServiceSettings, refuse_mexc_testnet


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MD_", frozen=True, extra="ignore")

    port: int = Field(default=8083, ge=1, le=65535)
    source: Literal["sim", "binance", "binanceusdm", "mexc"] = Field(
        default="sim",
        description="sim: the sim:market stream S4 appends to with S4_EXCHANGE=sim; else the "
        "venue's public order books through ccxt",
    )
    symbols: CsvList = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT", "QRLUSDT"],
        description="symbols to publish (the venue's ids, e.g. BTCUSDT)",
    )
    ttl_s: int = Field(
        default=30, ge=1, le=3600, description="mkt:* and feat:last:* expire after this"
    )
    # ---- sim source -------------------------------------------------------------------------
    sim_warmup: bool = Field(
        default=True,
        description="sim: backfill 3 h of synthetic 1-min bars on a symbol's first step, so "
        "history-based features (ATR, MAs, rv percentile) exist from the first publish",
    )
    sim_block_ms: int = Field(
        default=1000, ge=10, le=4000, description="sim: XREAD BLOCK on sim:market"
    )
    # ---- ccxt sources -----------------------------------------------------------------------
    poll_ms: int = Field(default=1000, ge=50, description="ccxt: order book poll period")
    funding_poll_ms: int = Field(
        default=10_000, ge=0, description="ccxt: funding rate + mark of futures (0: never)"
    )
    testnet: bool = Field(
        default=True, description="ccxt: the venue's testnet books (keep it as S4_TESTNET)"
    )
    exchange_base_url: Annotated[str | None, BlankIsNone] = Field(
        default=None,
        description="ccxt: send every request to this host (the simulator's Binance facade)",
    )
    request_timeout_ms: int = Field(default=5_000, ge=100, le=60_000)
    # ---- health -----------------------------------------------------------------------------
    stale_after_ms: int = Field(
        default=10_000,
        ge=100,
        description="/health reports stale when nothing was published for this long",
    )

    @model_validator(mode="after")
    def _mexc_has_no_testnet(self) -> Settings:
        refuse_mexc_testnet(self.source, self.testnet, prefix="MD_", venue_var="SOURCE")
        return self
