"""The venue facade: one object that behaves like Binance spot + USDⓈ-M futures.

It composes the parts the package docstring lists (:mod:`venue`) and keeps server time.
Everything is synchronous and driven by the injected clock: before each request the market is
stepped up to ``clock.now_ms()``; ``advance(ms)`` moves a :class:`~svckit.clock.ManualClock`
forward step by step, matching resting and conditional orders at every step. No sleeps, no I/O,
no global randomness.

Every request goes through the same gate (``_request``): the weight limiter (429 past the
per-minute budget), then the fault injector (429 / 5xx / timeouts before processing), then the
operation itself (which may raise a definitive :class:`~venue.errors.VenueError`), then the
post-processing faults (timeout after acceptance, dropped acknowledgement).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, runtime_checkable

from svckit.clock import Clock, ManualClock
from tradekit.enums import Market, Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO
from venue import errors
from venue.accounts import FuturesAccount, SpotAccount
from venue.algo import AlgoBook
from venue.book import Level
from venue.engine import MatchingEngine
from venue.faults import (
    FaultInjector,
    FaultKind,
    FaultPlan,
    WeightLimiter,
    raise_after,
    raise_before,
)
from venue.feed import EventFeed
from venue.klines import INTERVALS_MS, Bar, KlineBook
from venue.latency import LatencyModel
from venue.market import MarketSimulator, MarketUpdate
from venue.models import (
    AlgoOrder,
    BookView,
    ExecutionReport,
    FuturesAccountInfo,
    MarginType,
    OrderList,
    PositionInfo,
    ReportKind,
    TickerView,
    Trade,
    TradePrint,
    VenueOrder,
    WorkingType,
)

T = TypeVar("T")
E = TypeVar("E")
P = ParamSpec("P")

FUNDING_INTERVAL_MS = 8 * 3_600_000


def _on_market(
    op: str, fn: Callable[Concatenate[MatchingEngine, P], T]
) -> Callable[Concatenate[Venue, Market, P], T]:
    """`fn` as a Venue request on the engine of the market passed first (see `Venue._request`)."""

    def request(self: Venue, market: Market, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._request(op, lambda: fn(self._engine(market), *args, **kwargs), market)

    request.__doc__ = fn.__doc__
    return request


def _gated(
    op: str,
    fn: Callable[Concatenate[E, P], T],
    target: Callable[[Venue], E],
    market: Market | None = None,
) -> Callable[Concatenate[Venue, P], T]:
    """`fn` as a Venue request on the part `target` picks (the spot engine, the algo book, an
    account); `market`: whose request weight it costs (futures weigh differently)."""

    def request(self: Venue, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._request(op, lambda: fn(target(self), *args, **kwargs), market)

    request.__doc__ = fn.__doc__
    return request


@runtime_checkable
class SteppableClock(Protocol):
    def now_ms(self) -> int: ...

    def set(self, now_ms: int) -> None: ...


class Venue:
    """Binance-like venue simulator (spot + USDⓈ-M futures) over an injected clock."""

    MAX_CATCHUP_MS = 600_000  # a longer idle gap is skipped by sync(), not replayed

    def __init__(
        self,
        *,
        clock: Clock,
        instruments: Sequence[Instrument],
        market: MarketSimulator | None = None,
        spot_balances: dict[str, Decimal] | None = None,
        futures_wallet: Decimal = ZERO,
        seed: int = 0,
        faults: FaultPlan | FaultInjector | None = None,
        weight_limit_per_minute: int = 6_000,
        server_time_skew_ms: int = 0,
        auto_funding: bool = True,
        history_max: int | None = None,
        report_buffer: int = 200_000,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in instruments}
        self.market = market or MarketSimulator(seed=seed)
        self.faults = (
            faults if isinstance(faults, FaultInjector) else FaultInjector(faults, seed=seed)
        )
        self.latency = LatencyModel(seed=seed)
        self.limiter = WeightLimiter(weight_limit_per_minute)
        self.server_time_skew_ms = server_time_skew_ms
        self.auto_funding = auto_funding
        # `report_buffer`: reports kept for feed.drain(); 0 where reports are only taken by
        # subscription (S4's in-process venue), else nobody drains them and they pile up.
        self.feed = EventFeed(clock, self.faults, max_buffer=report_buffer)
        self._report_seqs = itertools.count(1)
        self.spot_account = SpotAccount(spot_balances)
        self.futures_account = FuturesAccount(futures_wallet, self.mark_price)
        self.spot = MatchingEngine(
            Market.SPOT,
            clock=clock,
            account=self.spot_account,
            instruments=self.instruments,
            report=self._order_report,
            list_report=self._list_report,
            first_order_id=1_000_001,
            first_trade_id=5_000_001,
            history_max=history_max,
        )
        self.futures = MatchingEngine(
            Market.FUT,
            clock=clock,
            account=self.futures_account,
            instruments=self.instruments,
            report=self._order_report,
            first_order_id=8_000_000_001,
            first_trade_id=9_000_001,
            history_max=history_max,
        )
        self.algo = AlgoBook(
            engine=self.futures,
            account=self.futures_account,
            clock=clock,
            working_price=self._working_price,
            report=self._algo_report,
        )
        self._market_ts = clock.now_ms()
        # Market-data taps (the Redis feed of `make run`): see add_market_listener().
        self._market_listeners: list[Callable[[str, MarketUpdate], None]] = []
        self.kline_book = KlineBook()
        self._next_funding = (self._market_ts // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
        if self.market.processes:
            self._step_market(self._market_ts, self.market.step_ms)

    # ---- reports ------------------------------------------------------------------------------
    def _publish(
        self, kind: ReportKind, execution_type: str, market: Market, symbol: str, **record: Any
    ) -> None:
        self.feed.publish(
            ExecutionReport(
                seq=next(self._report_seqs),
                kind=kind,
                execution_type=execution_type,
                market=market,
                symbol=symbol,
                ts=self.clock.now_ms(),
                **record,
            )
        )

    def _order_report(self, kind: str, order: VenueOrder, trade: Trade | None) -> None:
        record = {"order": order.snapshot(), "trade": trade}
        self._publish(ReportKind.ORDER, kind, order.market, order.symbol, **record)

    def _algo_report(self, kind: str, algo: AlgoOrder) -> None:
        self._publish(ReportKind.ALGO, kind, Market.FUT, algo.symbol, algo=algo.snapshot())

    def _list_report(self, lst: OrderList) -> None:
        self._publish(ReportKind.LIST, lst.status.value, Market.SPOT, lst.symbol, order_list=lst)

    # ---- time and the market --------------------------------------------------------------
    def server_time_ms(self) -> int:
        """`GET /api/v3/time` (clock plus the configured skew)."""
        return self._request("time", self.server_clock_ms)

    def server_clock_ms(self) -> int:
        """The venue's own time (clock plus skew) outside the request path: what a signed
        request's `timestamp`/`recvWindow` is checked against. No weight, no faults."""
        return self.clock.now_ms() + self.server_time_skew_ms

    def used_weight(self) -> int:
        """X-MBX-USED-WEIGHT-1M."""
        return self.limiter.used(self.clock.now_ms())

    def mark_price(self, symbol: str) -> Decimal:
        """The futures mark price, else the futures book's mid, else its last trade (else 0)."""
        mark = self.market.state(symbol).mark
        if mark is not None:
            return mark
        book = self.futures.book(symbol)
        bid, ask = book.best(Side.BUY), book.best(Side.SELL)
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return self.futures.last_price.get(symbol, ZERO)

    def _working_price(self, symbol: str, working_type: WorkingType) -> Decimal | None:
        if working_type is WorkingType.CONTRACT_PRICE:
            return self.futures.last_price.get(symbol)
        price = self.mark_price(symbol)
        return price if price > 0 else None

    def _engine(self, market: Market) -> MatchingEngine:
        return self.futures if market is Market.FUT else self.spot

    def _step_market(self, ts: int, dt_ms: int) -> None:
        for symbol, upd in self.market.step(ts, dt_ms).items():
            if symbol not in self.instruments:
                continue
            for listener in self._market_listeners:
                listener(symbol, upd)
            price = upd.prints[-1].price if upd.prints else upd.mid
            if price is not None:
                qty = sum((p.qty for p in upd.prints), ZERO)
                self.kline_book.record(symbol, upd.ts, price, qty, len(upd.prints))
            inst = self.instruments[symbol]
            for market in inst.markets:
                engine = self._engine(market)
                engine.book(symbol).replace_levels(upd.bids, upd.asks)
                engine.on_market_step(symbol, upd.prints, upd.last)
            if Market.FUT in inst.markets:
                self.algo.check_triggers(symbol)
        if self.auto_funding and ts >= self._next_funding:
            self.settle_funding()
            self._next_funding += FUNDING_INTERVAL_MS

    def add_market_listener(self, cb: Callable[[str, MarketUpdate], None]) -> Callable[[], None]:
        """Call `cb(symbol, update)` for every market step (books and tape), outside the
        request path: no weight, no injected faults. Returns an unsubscribe function."""
        self._market_listeners.append(cb)
        return lambda: self._market_listeners.remove(cb)

    def sync(self) -> None:
        """Bring the market up to the clock (a long idle gap is skipped, not replayed): every
        request does, and market-data pumps call it between requests."""
        now = self.clock.now_ms()
        step = self.market.step_ms
        if now - self._market_ts > self.MAX_CATCHUP_MS:
            self._market_ts = now - step
        while self._market_ts + step <= now:
            self._market_ts += step
            self._step_market(self._market_ts, step)
        self.feed.release_due()

    def advance(self, ms: int) -> None:
        """Run the market `ms` forward (ManualClock only), one market step at a time."""
        clock = self.clock
        if not isinstance(clock, SteppableClock):
            raise TypeError("advance() needs a clock that can be set (ManualClock)")
        target = clock.now_ms() + ms
        step = self.market.step_ms
        while self._market_ts + step <= target:
            self._market_ts += step
            clock.set(max(clock.now_ms(), self._market_ts))
            self._step_market(self._market_ts, step)
        clock.set(target)
        self.feed.release_due()

    def set_book(
        self,
        market: Market,
        symbol: str,
        *,
        bids: Iterable[Level],
        asks: Iterable[Level],
        prints: Iterable[TradePrint] = (),
    ) -> None:
        """Replace `symbol`'s market levels by hand (tests, symbols without a price process)
        and match resting/conditional orders against them."""
        engine = self._engine(market)
        engine.book(symbol).replace_levels(bids, asks)
        prints = list(prints)
        engine.on_market_step(symbol, prints, prints[-1].price if prints else None)
        if market is Market.FUT:
            self.algo.check_triggers(symbol)

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        """Override the futures mark price (until the next market step) and run triggers."""
        self.market.state(symbol).mark = price
        self.algo.check_triggers(symbol)

    def symbols(self, market: Market) -> list[str]:
        """The symbols `market` trades, sorted."""
        return sorted(s for s, i in self.instruments.items() if market in i.markets)

    def settle_funding(self, symbol: str | None = None) -> dict[str, Decimal]:
        """Apply the current funding rate to open positions; returns wallet changes."""
        symbols = [symbol] if symbol else sorted(self.instruments)
        out: dict[str, Decimal] = {}
        for s in symbols:
            if Market.FUT in self.instruments[s].markets:
                paid = self.futures_account.settle_funding(s, self.market.funding_rate(s))
                if paid:
                    out[s] = paid
        return out

    # ---- request gate -------------------------------------------------------------------------
    def _request(self, op: str, action: Callable[[], T], market: Market | None = None) -> T:
        self.sync()
        fault = self.faults.next_fault(op)
        if fault is not None and fault.kind is FaultKind.CONNECT_TIMEOUT:
            raise_before(fault)  # never reached the venue: no weight used
        self.limiter.charge(op, self.clock.now_ms(), futures=market is Market.FUT)
        if fault is not None:
            raise_before(fault)
        result = action()
        if fault is not None:
            raise_after(fault)
        return result

    # ---- orders, OCO lists, algo orders: the engines' own methods behind the request gate -----
    # `POST|DELETE|GET /api/v3/order` and `/fapi/v1/order` (post-only: spot LIMIT_MAKER, futures
    # LIMIT + GTX): the market, then MatchingEngine.place / cancel / get's own parameters.
    place_order = _on_market("place", MatchingEngine.place)
    cancel_order = _on_market("cancel", MatchingEngine.cancel)
    get_order = _on_market("query", MatchingEngine.get)
    # Spot OCO lists: `POST /api/v3/orderList/oco`, `DELETE|GET /api/v3/orderList`,
    # `GET /api/v3/openOrderList`.
    place_oco = _gated("oco_place", MatchingEngine.place_oco, lambda v: v.spot)
    cancel_order_list = _gated("oco_cancel", MatchingEngine.cancel_order_list, lambda v: v.spot)
    get_order_list = _gated("query", MatchingEngine.get_order_list, lambda v: v.spot)
    open_order_lists = _gated("open_orders", MatchingEngine.open_order_lists, lambda v: v.spot)
    # Futures conditional orders: `POST|DELETE|GET /fapi/v1/algoOrder` (algoType CONDITIONAL),
    # `GET /fapi/v1/openAlgoOrders`.
    place_algo_order = _gated("algo_place", AlgoBook.place, lambda v: v.algo)
    cancel_algo_order = _gated("algo_cancel", AlgoBook.cancel, lambda v: v.algo)
    get_algo_order = _gated("algo_query", AlgoBook.get, lambda v: v.algo)
    open_algo_orders = _gated("algo_query", AlgoBook.open_orders, lambda v: v.algo)

    def open_orders(self, market: Market, symbol: str | None = None) -> list[VenueOrder]:
        return self._request(
            "open_orders",
            lambda: [o.snapshot() for o in self._engine(market).open_orders(symbol)],
            market,
        )

    my_trades = _on_market("trades", MatchingEngine.my_trades)

    def book(self, market: Market, symbol: str, depth: int = 20) -> BookView:
        """`GET /api/v3/depth` (our own resting orders included in the levels)."""
        return self._request(
            "book",
            lambda: self._engine(market).book(symbol).view(self.clock.now_ms(), depth),
            market,
        )

    # ---- tickers ------------------------------------------------------------------------------
    def ticker(self, market: Market, symbol: str) -> TickerView:
        """Best bid/ask, last trade and (futures) mark price and funding: `/ticker/*`,
        `/fapi/v1/premiumIndex`."""

        def build() -> TickerView:
            engine = self._engine(market)
            book = engine.book(symbol)
            bids, asks = book.levels(Side.BUY, 1), book.levels(Side.SELL, 1)
            fut = market is Market.FUT
            return TickerView(
                symbol=symbol,
                ts=self.clock.now_ms(),
                last=engine.last_price.get(symbol),
                bid=bids[0] if bids else None,
                ask=asks[0] if asks else None,
                mark=self.mark_price(symbol) if fut else None,
                funding_rate=self.market.funding_rate(symbol) if fut else None,
                next_funding_ts=self._next_funding if fut else None,
            )

        return self._request("ticker", build)

    def klines(
        self,
        symbol: str,
        interval: str,
        *,
        limit: int = 500,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[Bar]:
        """Candlesticks, oldest first, the newest still forming (`/api/v3/klines`)."""
        if symbol not in self.instruments:
            raise errors.VenueError(-1121, "Invalid symbol.")
        if interval not in INTERVALS_MS:
            raise errors.VenueError(-1120, "Invalid interval.")
        return self._request(
            "klines",
            lambda: self.kline_book.klines(
                symbol, interval, limit=limit, start_ms=start_ms, end_ms=end_ms
            ),
        )

    # ---- accounts: spot balances (`GET /api/v3/account`), the futures wallet, open futures
    # positions (`GET /fapi/v3/positionRisk`) and one symbol's position
    balances = _gated("account", SpotAccount.balances, lambda v: v.spot_account)
    futures_account_info = _gated(
        "account", FuturesAccount.info, lambda v: v.futures_account, Market.FUT
    )
    positions = _gated("account", FuturesAccount.positions, lambda v: v.futures_account, Market.FUT)

    def position_risk(self, symbol: str | None = None) -> list[PositionInfo]:
        """One row per futures symbol, flat ones included (leverage and margin type are per
        symbol): `/fapi/v2/positionRisk`, `/fapi/v1/symbolConfig`."""
        if symbol is not None:
            self.futures.instrument(symbol)
        symbols = [symbol] if symbol else self.symbols(Market.FUT)
        return self._request(
            "account", lambda: [self.futures_account.position(s) for s in symbols], Market.FUT
        )

    def futures_account_state(self) -> tuple[FuturesAccountInfo, list[PositionInfo]]:
        """Wallet totals plus open positions in one request (`/fapi/v2|v3/account`)."""
        return self._request(
            "account",
            lambda: (self.futures_account.info(), self.futures_account.positions()),
            Market.FUT,
        )

    def set_leverage(self, symbol: str, leverage: int) -> int:
        self.futures.instrument(symbol)
        return self._request(
            "leverage", lambda: self.futures_account.set_leverage(symbol, leverage)
        )

    def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        self.futures.instrument(symbol)
        self._request(
            "margin_type", lambda: self.futures_account.set_margin_type(symbol, margin_type)
        )


__all__ = ["ManualClock", "Venue"]
