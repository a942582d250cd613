"""The market-data feeder (`md_feeder`), a process of its own beside S3 and S4.

* S4 with the simulated venue only appends the venue's market steps to `sim:market`; the
  feeder alone turns them into `mkt:tick`, `mkt:depth` and `feat:last`;
* `python -m md_feeder` as a real process: publishes, serves /health and /metrics, stops on
  SIGTERM;
* the polling feed (what runs against a live venue): history built from polls, and ccxt over
  real HTTP against the simulator's Binance facade (books, funding, mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest

from md_feeder.app import create_app as create_feeder_app
from md_feeder.app import start_feeder
from md_feeder.config import Settings as MDSettings
from md_feeder.metrics import FeedMetrics
from md_feeder.polling import (
    BookSource,
    BookView,
    CcxtBookSource,
    FundingView,
    PollingFeed,
    SourceError,
)
from md_feeder.sim_stream import SIM_USDTTWD_BETA, synthetic_rho_usdttwd
from s4_router.adapters.exchange.sim_market import SimMarketTap
from s4_router.bootstrap import bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app
from svckit import jsonutil, keys
from svckit.clock import ManualClock, WallClock
from svckit.embedded_redis import EmbeddedRedis, free_port
from svckit.redisio import RedisClient, make_redis
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.facade_server import FacadeServer
from tests.tracking_clock import TrackingClock
from tradekit.enums import Market
from tradekit.features import Bar
from tradekit.market import MarketStep
from venue.defaults import DEFAULT_INSTRUMENTS, default_venue
from venue.facade import create_facade
from venue.venue import Venue

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "QRLUSDT")


async def _wait_for_key(redis: RedisClient, key: str, within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while not await redis.exists(key):  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.02)


def _assert_full_features(
    feats: dict[str, float], tick: dict[str, str], depth: dict[str, list[list[str]]]
) -> None:
    assert 55_000 < feats["mid"] < 75_000  # BTCUSDT trades around 65,000 on the simulator
    assert feats["spread_bps"] >= 0 and feats["depth_top1_usdt"] > 0
    # History-based features exist from the first publish (warm-up backfill of 1-min bars).
    for name in (
        "atr_14",
        "ma7_5m",
        "ma25_5m",
        "rv_1h",
        "rv_pctile_30d",
        "ma_cross",
        "funding_rate",
        "funding_next_abs",
        "price",
    ):
        assert name in feats, name
    assert 0 <= feats["rv_pctile_30d"] <= 1 and feats["atr_14"] > 0
    assert -1 <= feats["rho_usdttwd_14"] <= 1  # synthetic USDT/TWD in the simulator
    assert 0 < feats["rv_1h"] < 0.05  # the hour's volatility, not annualised
    assert abs(feats["ma7_5m"] / feats["mid"] - 1) < 0.05
    assert float(tick["bid"]) < float(tick["ask"]) and tick["mark"] is not None
    assert len(depth["bids"]) >= 5 and float(depth["bids"][0][0]) == float(tick["bid"])


async def test_s4_with_sim_exchange_publishes_no_features_and_the_feeder_alone_publishes_them(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    s4_settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    container = await bootstrap(s4_settings, redis=redis, store=store)
    app = create_app(s4_settings, container=container)
    try:
        async with app.router.lifespan_context(app):
            # S4 runs the simulated venue: its market steps reach sim:market ...
            async with asyncio.timeout(10):
                while await redis.xlen(keys.SIM_MARKET) < 6:  # noqa: ASYNC110 - polls Redis
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            # ... and nothing else: the market data S3 reads is not S4's to publish.
            for symbol in SYMBOLS:
                for key in (keys.feat_last(symbol), keys.mkt_tick(symbol), keys.mkt_depth(symbol)):
                    assert not await redis.exists(key), key
            entries = await redis.xrange(keys.SIM_MARKET)
            steps = [MarketStep.model_validate_json(f["data"]) for _, f in entries]
            assert {s.symbol for s in steps} == set(SYMBOLS)
            assert all(s.bids and s.asks for s in steps)
            btc = [s for s in steps if s.symbol == "BTCUSDT"]
            assert all(s.funding_rate is not None and s.mark is not None for s in btc)

            md = MDSettings(redis_addresses=redis_addresses, sim_block_ms=50)
            async with AsyncExitStack() as stack:
                feeder = await start_feeder(stack, md, redis=redis)
                await _wait_for_key(redis, keys.feat_last("BTCUSDT"))
                feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
                tick = jsonutil.loads(await redis.get(keys.mkt_tick("BTCUSDT")))
                depth = jsonutil.loads(await redis.get(keys.mkt_depth("BTCUSDT")))
                _assert_full_features(feats, tick, depth)
                assert 0 < await redis.ttl(keys.feat_last("BTCUSDT")) <= md.ttl_s
                for symbol in SYMBOLS:
                    await _wait_for_key(redis, keys.feat_last(symbol))
                assert feeder.health()["stale"] is False
                # The feeder follows the venue: a later publish reflects a later step.
                first_ts = feats["ts"]
                async with asyncio.timeout(5):
                    while (  # noqa: ASYNC110  (polling another process's writes)
                        jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))["ts"] == first_ts
                    ):
                        await asyncio.sleep(0.05)
            assert feeder.task is not None and feeder.task.done()
    finally:
        await store.close()


async def test_feeder_process_alone_publishes_serves_health_and_metrics_and_stops_on_sigterm(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    """`python -m md_feeder`: its own process, its own settings (MD_*)."""
    venue = default_venue(clock=WallClock(), seed=5)
    tap = SimMarketTap(venue=venue, redis=redis, symbols=["BTCUSDT"], period_ms=50)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_", "MD_"))} | {
        "MD_REDIS_ADDRESSES": ",".join(redis_addresses),
        "MD_PORT": str(port),
        "MD_SYMBOLS": "BTCUSDT",
        "MD_SIM_BLOCK_MS": "50",
    }
    log_path = tmp_path / "md_feeder.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "md_feeder", env=env, cwd=REPO, stdout=log, stderr=log
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async with asyncio.timeout(30):
                while True:
                    assert proc.returncode is None, log_path.read_text()
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            async with asyncio.timeout(15):
                while not await redis.exists(keys.feat_last("BTCUSDT")):
                    await tap.publish_once()
                    await asyncio.sleep(0.1)
            feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
            assert feats["symbol"] == "BTCUSDT" and "atr_14" in feats and "funding_rate" in feats
            health = (await http.get("/health")).json()
            assert health["status"] == "ok" and health["redis"] is True
            assert health["source"] == "sim" and health["symbols"] == ["BTCUSDT"]
            assert health["stale"] is False and health["last_publish_age_ms"] < 10_000
            text = (await http.get("/metrics")).text
            assert 'md_snapshots_published_total{symbol="BTCUSDT"}' in text
            assert "md_last_publish_timestamp_seconds" in text
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rc = await proc.wait()
        assert rc in (0, -signal.SIGTERM)
        out = log_path.read_text()
        assert "Application shutdown complete" in out, out[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.cluster
@pytest.mark.parametrize("redis_mode", ["cluster"], indirect=True)
async def test_sim_market_and_feeder_over_a_redis_cluster_publish_every_symbol(
    redis: RedisClient, redis_addresses: list[str]
) -> None:
    """What deploy/k8s configures: the stream on one node, the symbols' keys on all three."""
    venue = default_venue(clock=WallClock(), seed=5)
    tap = SimMarketTap(venue=venue, redis=redis, symbols=SYMBOLS, period_ms=50)
    md = MDSettings(redis_addresses=redis_addresses, sim_block_ms=50)
    async with AsyncExitStack() as stack:
        await start_feeder(stack, md, redis=redis)
        async with asyncio.timeout(15):
            while not all([await redis.exists(keys.feat_last(s)) for s in SYMBOLS]):
                await tap.publish_once()
                await asyncio.sleep(0.1)
    for symbol in SYMBOLS:
        depth = jsonutil.loads(await redis.get(keys.mkt_depth(symbol)))
        assert depth["symbol"] == symbol and depth["bids"] and depth["asks"]


async def test_feeder_with_redis_down_answers_503_counts_errors_and_keeps_running() -> None:
    server = EmbeddedRedis().start()
    client = make_redis(server.addresses)
    app = create_feeder_app(
        MDSettings(redis_addresses=server.addresses, sim_block_ms=50), redis=client
    )
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://md") as http,
        ):
            health = (await http.get("/health")).json()
            assert health["status"] == "ok" and health["stale"] is True  # nothing published yet
            server.stop()
            r = await http.get("/health")
            assert r.status_code == 503 and r.json()["redis"] is False
            async with asyncio.timeout(10):
                while (  # noqa: ASYNC110  (polling another process's metrics)
                    'md_source_errors_total{kind="redis"}' not in (await http.get("/metrics")).text
                ):
                    await asyncio.sleep(0.1)
            feeder = app.state.feeder
            assert feeder.task is not None and not feeder.task.done()
            live = await http.get("/livez")
            assert live.status_code == 200 and live.json() == {"status": "alive", "ended": []}
            # a feed task that ended is what a restart fixes: liveness says so
            feeder.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder.task
            dead = await http.get("/livez")
            assert dead.status_code == 503 and dead.json()["ended"] == ["market-feed"]
    finally:
        server.stop()
        await client.aclose()


def test_feeder_with_bad_setting_exits_2_naming_the_variable(redis_addresses: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MD_")} | {
        "MD_REDIS_ADDRESSES": ",".join(redis_addresses),
        "MD_SOURCE": "kraken",
    }
    out = subprocess.run(
        [sys.executable, "-m", "md_feeder"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "MD_SOURCE='kraken'" in out.stderr


class VenueBooks(BookSource):
    """The in-process simulator behind the source port (a manual clock drives it)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def start(self, symbols: Sequence[str]) -> list[str]:
        return [s for s in symbols if s in self.venue.instruments]

    def is_futures(self, symbol: str) -> bool:
        return Market.FUT in self.venue.instruments[symbol].markets

    async def fetch_book(self, symbol: str, depth: int) -> BookView:
        book = self.venue.book(Market.FUT, symbol, depth)
        return BookView(book.ts, book.bids, book.asks)

    async def fetch_funding(self, symbol: str) -> FundingView:
        return FundingView(
            self.venue.clock.now_ms(),
            self.venue.market.funding_rate(symbol),
            self.venue.mark_price(symbol),
        )


async def test_polling_feed_publishes_and_builds_history_from_polls(redis: RedisClient) -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=3)
    feed = PollingFeed(
        source=VenueBooks(venue),
        redis=redis,
        symbols=["BTCUSDT", "NOPEUSDT"],
        period_ms=1000,
        funding_period_ms=60_000,
        monotonic_ms=lambda: float(clock.now_ms()),
    )
    await feed.publish_once()
    assert feed.symbols == ["BTCUSDT"]  # a symbol the venue does not list is left out
    feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
    assert 55_000 < feats["mid"] < 75_000 and feats["spread_bps"] >= 0
    assert feats["funding_rate"] == float(venue.market.funding_rate("BTCUSDT"))
    assert "atr_14" not in feats  # no synthetic warm-up on a live venue: history first
    tick = jsonutil.loads(await redis.get(keys.mkt_tick("BTCUSDT")))
    assert float(tick["bid"]) < float(tick["ask"]) and tick["mark"] is not None
    assert 0 < await redis.ttl(keys.feat_last("BTCUSDT")) <= 30
    for _ in range(16 * 6):  # 16 minutes of 10-second polls
        venue.advance(10_000)
        await feed.publish_once()
    feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
    assert feats["atr_14"] > 0 and feats["ts"] == venue.clock.now_ms()


class FlakyVenueBooks(VenueBooks):
    """Funding always fails; the first book of each symbol comes back in a shape nobody
    expected (a bug, not a venue error)."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.books = 0

    async def fetch_book(self, symbol: str, depth: int) -> BookView:
        self.books += 1
        if self.books == 1:
            raise KeyError("bids")
        return await super().fetch_book(symbol, depth)

    async def fetch_funding(self, symbol: str) -> FundingView:
        raise SourceError("503 from premiumIndex")


async def test_polling_feed_with_failing_funding_and_a_bad_answer_keeps_publishing_books(
    redis: RedisClient,
) -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=3)
    metrics = FeedMetrics()
    feed = PollingFeed(
        source=FlakyVenueBooks(venue),
        redis=redis,
        symbols=["BTCUSDT"],
        period_ms=10,
        metrics=metrics,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(feed.run(stop))
    try:
        await _wait_for_key(redis, keys.feat_last("BTCUSDT"))
    finally:
        stop.set()
        await task
    feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
    assert feats["mid"] > 0 and "funding_rate" not in feats
    text = generate_latest(metrics.registry).decode()
    assert 'md_source_errors_total{kind="internal"} 1.0' in text
    assert 'md_source_errors_total{kind="source"}' in text


@pytest.fixture
def facade_venue() -> tuple[Venue, FacadeServer]:
    btc, qrl = (i for i in DEFAULT_INSTRUMENTS if i.symbol in ("BTCUSDT", "QRLUSDT"))
    spot_only = qrl.model_copy(update={"markets": (Market.SPOT,)})
    venue = default_venue(clock=TrackingClock(), seed=11, instruments=[btc, spot_only])
    return venue, FacadeServer(create_facade(venue, api_key="k", api_secret="s"))


async def test_ccxt_source_over_the_binance_facade_publishes_books_funding_and_mark(
    redis: RedisClient, facade_venue: tuple[Venue, FacadeServer]
) -> None:
    """ccxt's real code path over real HTTP (public endpoints, no keys): a symbol's futures
    book where it is listed, else its spot book."""
    venue, server = facade_venue
    with server:
        source = CcxtBookSource("binance", testnet=False, base_url=server.url)
        feed = PollingFeed(
            source=source, redis=redis, symbols=["BTCUSDT", "QRLUSDT"], period_ms=100
        )
        try:
            assert await feed.publish_once() == 2
            assert source.is_futures("BTCUSDT") and not source.is_futures("QRLUSDT")
            feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
            tick = jsonutil.loads(await redis.get(keys.mkt_tick("BTCUSDT")))
            book = venue.book(Market.FUT, "BTCUSDT", 5)
            assert D(tick["bid"]) == book.bids[0][0] and D(tick["ask"]) == book.asks[0][0]
            assert feats["funding_rate"] == float(venue.market.funding_rate("BTCUSDT"))
            assert D(tick["mark"]) > 0
            qrl = jsonutil.loads(await redis.get(keys.feat_last("QRLUSDT")))
            assert "funding_rate" not in qrl and qrl["mid"] > 0  # spot only: no funding
        finally:
            await source.close()


def test_synthetic_rho_with_long_history_is_deterministic_and_near_its_beta() -> None:
    calc_bars = []
    price = 65000.0
    rng = random.Random(1)
    for i in range(3000):
        nxt = price * (1 + rng.gauss(0, 0.001))
        calc_bars.append(
            Bar(
                i * 60_000,
                D(f"{price:.2f}"),
                D(f"{max(price, nxt):.2f}"),
                D(f"{min(price, nxt):.2f}"),
                D(f"{nxt:.2f}"),
            )
        )
        price = nxt
    rho = synthetic_rho_usdttwd(calc_bars, seed=42)
    assert rho == synthetic_rho_usdttwd(calc_bars, seed=42)
    assert rho is not None and abs(rho - SIM_USDTTWD_BETA) < 0.1
    assert synthetic_rho_usdttwd(calc_bars[:5], seed=42) is None
