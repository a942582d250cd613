"""The ccxt sources: a venue's public order books (and futures funding) polled on a period.

:class:`PollingFeed` drives any :class:`BookSource`; :class:`CcxtBookSource` is the one that
runs (binance, binanceusdm, mexc; public endpoints only, no keys). Bars are built from the
sampled mid (there is no tape here), and there is no synthetic warm-up: history-based features
appear once enough live bars exist (14 minutes for ATR(14), about two hours for MA25 on 5-min
bars). Each symbol's failure is its own: one venue error skips that symbol for the round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from redis import exceptions as redis_exc

from md_feeder.metrics import FeedMetrics
from md_feeder.publishing import DEPTH_LEVELS, BookSample, publish_snapshots
from svckit.ccxt_hosts import point_client
from svckit.redisio import RedisClient
from tradekit.features import FeatureCalculator

log = logging.getLogger(__name__)

Level = tuple[Decimal, Decimal]
ZERO_QTY = Decimal(0)


class SourceError(Exception):
    """The venue did not answer a market-data request usefully (network, 4xx/5xx, shape)."""


@dataclass(frozen=True, slots=True)
class BookView:
    ts: int
    bids: Sequence[Level]
    asks: Sequence[Level]

    @property
    def mid(self) -> Decimal:
        return (self.bids[0][0] + self.asks[0][0]) / 2


@dataclass(frozen=True, slots=True)
class FundingView:
    ts: int
    rate: Decimal
    mark: Decimal | None


class BookSource(ABC):
    """A venue's public market data, by the venue's symbol id (e.g. BTCUSDT)."""

    @abstractmethod
    async def start(self, symbols: Sequence[str]) -> list[str]:
        """Prepare (load markets); returns the symbols the venue lists, in order."""

    @abstractmethod
    def is_futures(self, symbol: str) -> bool: ...

    @abstractmethod
    async def fetch_book(self, symbol: str, depth: int) -> BookView: ...

    @abstractmethod
    async def fetch_funding(self, symbol: str) -> FundingView: ...

    async def close(self) -> None:
        return None


class PollingFeed:
    """Polls every symbol's book each `period_ms` (funding each `funding_period_ms`)."""

    def __init__(
        self,
        *,
        source: BookSource,
        redis: RedisClient,
        symbols: Iterable[str],
        period_ms: int,
        funding_period_ms: int = 10_000,
        ttl_s: int = 30,
        metrics: FeedMetrics | None = None,
        monotonic_ms: Callable[[], float] | None = None,
    ) -> None:
        self.source = source
        self.redis = redis
        self.wanted = list(symbols)
        self.symbols: list[str] = []
        self.period_ms = period_ms
        self.funding_period_ms = funding_period_ms
        self.ttl_s = ttl_s
        self.metrics = metrics or FeedMetrics()
        self.calc: dict[str, FeatureCalculator] = {}
        self._mark: dict[str, Decimal | None] = {}
        self._funding_due: dict[str, float] = {}
        self._now = monotonic_ms or (lambda: time.monotonic() * 1000)
        self.started = False

    async def start(self) -> None:
        self.symbols = await self.source.start(self.wanted)
        missing = sorted(set(self.wanted) - set(self.symbols))
        if missing:
            log.warning("market feed: not listed at the venue: %s", ",".join(missing))
        self.calc = {s: FeatureCalculator(s) for s in self.symbols}
        self.started = True

    async def _poll(self, symbol: str) -> BookSample | None:
        book = await self.source.fetch_book(symbol, DEPTH_LEVELS)
        if not book.bids or not book.asks:
            return None
        calc = self.calc[symbol]
        calc.on_book(book.ts, book.bids, book.asks)
        calc.on_trade(book.ts, book.mid, ZERO_QTY)  # a mid sample builds the 1-min bars
        now = self._now()
        due = self._funding_due.get(symbol, 0.0)
        if self.funding_period_ms and self.source.is_futures(symbol) and now >= due:
            self._funding_due[symbol] = now + self.funding_period_ms
            try:
                funding = await self.source.fetch_funding(symbol)
            except SourceError as exc:  # the book is still worth publishing
                self.metrics.error("source")
                log.warning("market feed: %s funding: %s", symbol, exc)
            else:
                calc.on_funding(funding.ts, funding.rate)
                self._mark[symbol] = funding.mark
        return BookSample(symbol, book.ts, book.bids, book.asks, book.mid, self._mark.get(symbol))

    async def publish_once(self) -> int:
        if not self.started:
            await self.start()
        results = await asyncio.gather(
            *(self._poll(s) for s in self.symbols), return_exceptions=True
        )
        samples: list[BookSample] = []
        for symbol, res in zip(self.symbols, results, strict=True):
            if isinstance(res, SourceError):
                self.metrics.error("source")
                log.warning("market feed: %s: %s", symbol, res)
            elif isinstance(res, BaseException):
                raise res
            elif res is not None:
                samples.append(res)
        return await publish_snapshots(self.redis, samples, self.calc, self.ttl_s, self.metrics)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.publish_once()
            except (redis_exc.RedisError, OSError) as exc:
                self.metrics.error("redis")
                log.warning("market feed: redis unavailable: %s", exc)
            except SourceError as exc:  # start(): the venue's markets could not be loaded
                self.metrics.error("source")
                log.warning("market feed: venue unavailable: %s", exc)
            except Exception:  # an answer of an unexpected shape: keep feeding the others
                self.metrics.error("internal")
                log.exception("market feed: publish failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.period_ms / 1000)


# ---- ccxt --------------------------------------------------------------------------------------
ExchangeId = Literal["binance", "binanceusdm", "mexc"]


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


class CcxtBookSource(BookSource):
    """Public books (and funding) through ``ccxt.async_support``. Binance: spot through
    ``binance`` and futures through ``binanceusdm`` (each keeps its own rate limiter, as
    Binance limits them apart); a symbol listed on futures is read there (what S3 trades by
    default), else on spot. MEXC: one client, the swap where listed, else spot."""

    def __init__(
        self,
        exchange_id: ExchangeId,
        *,
        testnet: bool = True,
        base_url: str | None = None,
        timeout_ms: int = 5_000,
    ) -> None:
        import ccxt.async_support as ccxt_async

        self._ccxt = ccxt_async
        config: dict[str, Any] = {
            "enableRateLimit": True,  # public endpoints only: ccxt's own pacing is enough
            "timeout": timeout_ms,
            "options": {"fetchCurrencies": False, "adjustForTimeDifference": False},
        }

        def build(name: str) -> Any:
            client = getattr(ccxt_async, name)(config)
            return point_client(client, testnet=testnet, base_url=base_url)

        self._binance = exchange_id in ("binance", "binanceusdm")
        if self._binance:
            self._spot, self._fut = build("binance"), build("binanceusdm")
            self._spot.options["fetchMarkets"] = {"types": ["spot"]}
            self._fut.options["fetchMarkets"] = {"types": ["linear"]}
        else:
            self._spot = self._fut = build(exchange_id)
        self._route: dict[str, tuple[Any, str, bool]] = {}  # symbol → (client, ccxt symbol, fut)

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except self._ccxt.BaseError as exc:
            raise SourceError(f"{type(exc).__name__}: {exc}") from exc

    async def start(self, symbols: Sequence[str]) -> list[str]:
        listed: dict[str, tuple[Any, str, bool]] = {}
        clients = [self._fut, self._spot] if self._binance else [self._spot]
        for client in clients:
            await self._call(client.load_markets())
            for m in client.markets.values():
                fut = bool(m.get("swap") and m.get("linear"))
                if not (fut or m.get("spot")):
                    continue
                key = str(m["id"]).replace("_", "").upper()
                # Futures first: kept when the spot market of the same id comes later.
                if key not in listed or (fut and not listed[key][2]):
                    listed[key] = (client, str(m["symbol"]), fut)
        self._route = {s: listed[s] for s in symbols if s in listed}
        return [s for s in symbols if s in self._route]

    def is_futures(self, symbol: str) -> bool:
        return self._route[symbol][2]

    async def fetch_book(self, symbol: str, depth: int) -> BookView:
        client, sym, _ = self._route[symbol]
        book = await self._call(client.fetch_order_book(sym, depth))

        def levels(rows: Sequence[Sequence[Any]]) -> tuple[Level, ...]:
            return tuple((Decimal(str(r[0])), Decimal(str(r[1]))) for r in rows[:depth])

        ts = book.get("timestamp") or client.milliseconds()
        return BookView(int(ts), levels(book["bids"]), levels(book["asks"]))

    async def fetch_funding(self, symbol: str) -> FundingView:
        client, sym, _ = self._route[symbol]
        fr = await self._call(client.fetch_funding_rate(sym))
        info = fr.get("info") or {}
        # Binance's raw strings are exact; ccxt's floats are the fallback.
        rate = _dec(info.get("lastFundingRate")) or _dec(fr.get("fundingRate"))
        if rate is None:
            raise SourceError(f"{symbol}: no funding rate in the answer")
        mark = _dec(info.get("markPrice")) or _dec(fr.get("markPrice"))
        ts = fr.get("timestamp") or client.milliseconds()
        return FundingView(int(ts), rate, mark)

    async def close(self) -> None:
        for client in {id(c): c for c in (self._spot, self._fut)}.values():
            await client.close()
