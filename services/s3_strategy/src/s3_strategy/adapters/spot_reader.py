"""S3's read-only view of a spot account and market: balances, ticker and klines, for the
rebalance tasks (they read what they plan from; S4 alone trades).

Why S3 has its own small adapter instead of reading through S4: S4 exposes no account/market
read endpoints, and S3 must not import s4_router. Reads carry no risk of a double trade, so a
second read-only API key (spot "read" permission only) is the production setup.

`CcxtSpotReader` works for any ccxt spot exchange with these calls; `mexc` (the seeds' venue) and
`binance` are the two we run. `base_url` re-points every ccxt API URL at one host (the local
Binance-compatible facade in tests and air-gapped runs), as S4's adapter does.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import ccxt.async_support as ccxt_async

from svckit.ccxt_hosts import rewrite_urls
from tradekit.money import ZERO


class SpotReadError(Exception):
    """A read that failed (network, venue error, unknown symbol): the step reports it."""


@dataclass(frozen=True, slots=True)
class SpotBalance:
    free: Decimal
    locked: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class SpotTicker:
    last: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None


class SpotReader(abc.ABC):
    """Port: what the rebalance tasks read from the venue."""

    @abc.abstractmethod
    async def balances(self, assets: Sequence[str]) -> dict[str, SpotBalance]: ...

    @abc.abstractmethod
    async def ticker(self, symbol: str) -> SpotTicker: ...

    @abc.abstractmethod
    async def closes(self, symbol: str, interval: str, limit: int) -> list[Decimal]:
        """Closes of the last `limit` *closed* bars, oldest first."""

    async def close(self) -> None:
        return None


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value))


class CcxtSpotReader(SpotReader):
    def __init__(
        self,
        exchange_id: Literal["mexc", "binance"],
        *,
        api_key: str | None,
        api_secret: str | None,
        base_url: str | None = None,
        timeout_ms: int = 10_000,
    ) -> None:
        cls = getattr(ccxt_async, exchange_id)
        self.exchange_id = exchange_id
        self.client: Any = cls(
            {
                "apiKey": api_key or "",
                "secret": api_secret or "",
                "enableRateLimit": True,
                "timeout": timeout_ms,
                "options": {
                    "defaultType": "spot",
                    "fetchCurrencies": False,
                    # spot only: no margin/futures market lists (extra calls, extra permissions)
                    "fetchMarkets": ["spot"],
                    "fetchMargins": False,
                    "crossMarginPairsData": [],
                    "isolatedMarginPairsData": [],
                    # signed reads carry the venue's time, not ours (skewed hosts)
                    "adjustForTimeDifference": True,
                },
            }
        )
        if base_url is not None:
            self.client.urls["api"] = rewrite_urls(self.client.urls["api"], base_url)
        if exchange_id == "mexc":
            self.client.fetch_markets = self._mexc_spot_markets
            # Currency metadata (networks, withdraw fees: /capital/config/getall) is not needed
            # to read balances, and ccxt's mexc ignores the fetchCurrencies option.
            self.client.has = {**self.client.has, "fetchCurrencies": False}

    async def _mexc_spot_markets(self, params: dict[str, Any] | None = None) -> Any:
        """ccxt's mexc loads swap markets too (contract.mexc.com): a spot reader needs neither
        the extra call nor the contract host, so it loads the spot list only."""
        if self.client.options.get("adjustForTimeDifference"):
            await self.client.load_time_difference()
        return await self.client.fetch_spot_markets(params or {})

    def _symbol(self, symbol: str, quote: str = "USDT") -> str:
        # QRLUSDT → QRL/USDT (the rebalance pairs are all quoted in USDT)
        if symbol.endswith(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
        return symbol

    async def balances(self, assets: Sequence[str]) -> dict[str, SpotBalance]:
        try:
            raw = await self.client.fetch_balance({"type": "spot"})
        except Exception as exc:
            raise SpotReadError(f"{self.exchange_id} balances: {exc}") from exc
        out: dict[str, SpotBalance] = {}
        for asset in assets:
            entry = raw.get(asset) or {}
            out[asset] = SpotBalance(
                free=_dec(entry.get("free")) or ZERO, locked=_dec(entry.get("used")) or ZERO
            )
        return out

    async def ticker(self, symbol: str) -> SpotTicker:
        try:
            raw = await self.client.fetch_ticker(self._symbol(symbol))
        except Exception as exc:
            raise SpotReadError(f"{self.exchange_id} ticker {symbol}: {exc}") from exc
        last = _dec(raw.get("last") or raw.get("close"))
        if last is None:
            raise SpotReadError(f"{self.exchange_id} ticker {symbol}: no last price")
        return SpotTicker(last=last, bid=_dec(raw.get("bid")), ask=_dec(raw.get("ask")))

    async def closes(self, symbol: str, interval: str, limit: int) -> list[Decimal]:
        try:
            # one bar more: the newest bar is still forming and is dropped
            rows = await self.client.fetch_ohlcv(self._symbol(symbol), interval, limit=limit + 1)
        except Exception as exc:
            raise SpotReadError(f"{self.exchange_id} klines {symbol}: {exc}") from exc
        bar_ms = int(self.client.parse_timeframe(interval) * 1000)
        # The venue's clock decides which bar is closed (ccxt: timeDifference = ours − venue's).
        now = int(self.client.milliseconds()) - int(self.client.options.get("timeDifference") or 0)
        # A bar is closed once its open time + its length has passed.
        closes = [Decimal(str(r[4])) for r in rows if int(r[0]) + bar_ms <= now]
        return closes[-limit:]

    async def close(self) -> None:
        await self.client.close()
