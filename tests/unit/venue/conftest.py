"""Shared builders for the venue unit tests: a hand-set book around 100 so fills can be checked
by hand (asks 100.0×1, 100.5×2, 101.0×3; bids 99.5×1, 99.0×2, 98.5×3)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from svckit.clock import ManualClock
from tradekit.enums import Market
from tradekit.instrument import Instrument
from venue.accounts import FuturesAccount, SpotAccount
from venue.engine import MatchingEngine
from venue.venue import Venue

D = Decimal

TEST = Instrument(
    symbol="TESTUSDT",
    base_asset="TEST",
    tickSize=D("0.1"),
    stepSize=D("0.001"),
    minNotional=D("5"),
    maker_fee=D("0.0002"),
    taker_fee=D("0.0004"),
)

ASKS = [(D("100.0"), D("1")), (D("100.5"), D("2")), (D("101.0"), D("3"))]
BIDS = [(D("99.5"), D("1")), (D("99.0"), D("2")), (D("98.5"), D("3"))]


class Recorder:
    """Collects engine reports (execution type, order snapshot) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []

    def __call__(self, kind: str, order, trade) -> None:
        self.events.append((kind, order.order_id, order.status.value))

    def kinds(self, order_id: int) -> list[str]:
        return [k for k, oid, _ in self.events if oid == order_id]


def set_book(engine: MatchingEngine, symbol: str = "TESTUSDT", bids=None, asks=None) -> None:
    engine.book(symbol).replace_levels(
        BIDS if bids is None else bids, ASKS if asks is None else asks
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000)


@pytest.fixture
def spot_account() -> SpotAccount:
    return SpotAccount({"USDT": D("100000"), "TEST": D("50")})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def spot(clock: ManualClock, spot_account: SpotAccount, recorder: Recorder) -> MatchingEngine:
    eng = MatchingEngine(
        Market.SPOT,
        clock=clock,
        account=spot_account,
        instruments={"TESTUSDT": TEST},
        report=recorder,
    )
    set_book(eng)
    return eng


@pytest.fixture
def fut_account() -> FuturesAccount:
    return FuturesAccount(D("100000"), mark_price=lambda _s: D("100"))


@pytest.fixture
def fut(clock: ManualClock, fut_account: FuturesAccount) -> MatchingEngine:
    eng = MatchingEngine(
        Market.FUT, clock=clock, account=fut_account, instruments={"TESTUSDT": TEST}
    )
    set_book(eng)
    return eng


@pytest.fixture
def make_venue(clock: ManualClock):
    """Builds a venue without a price process: books set by hand around 100 on both markets."""

    def build(**kwargs) -> Venue:
        v = Venue(
            clock=clock,
            instruments=[TEST],
            spot_balances={"USDT": D("100000"), "TEST": D("50")},
            futures_wallet=D("10000"),
            auto_funding=False,
            **kwargs,
        )
        for market in (Market.SPOT, Market.FUT):
            v.set_book(market, "TESTUSDT", bids=BIDS, asks=ASKS)
        return v

    return build


@pytest.fixture
def venue(make_venue: Callable[..., Venue]) -> Venue:
    return make_venue()
