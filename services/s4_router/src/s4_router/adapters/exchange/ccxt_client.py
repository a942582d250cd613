"""ccxt adapter: :class:`CcxtExchange` puts Binance spot + USDⓈ-M futures (or MEXC) behind the
exchange port, through ``ccxt.async_support``.

* ``S4_EXCHANGE=binance`` or ``binanceusdm``: spot goes through ``ccxt.binance`` and futures
  through ``ccxt.binanceusdm`` (one API key; two clients so each keeps its own default market
  type and its own rate limiter, as Binance limits spot and futures separately).
  ``S4_EXCHANGE=mexc``: one ``ccxt.mexc`` client for both.
* Hosts (:func:`svckit.ccxt_hosts.point_client`): the testnet, or every API URL to one host
  (the simulator's facade in tests: ccxt's own code path end to end over real HTTP).
* Markets come from our instrument_registry (Binance ``exchangeInfo`` entries built by
  :mod:`.ccxt_setup`), so start-up does not depend on venue discovery; MEXC still discovers
  them, but only the lists the registry trades (spot and/or swap, no currency list).
* Requests and answers are mapped in :mod:`.ccxt_orders`, errors in :mod:`.errors_ccxt`.

Binance's trade rows carry no client order id: ``fetch_my_trades`` fills it from orders this
process has seen, and queries the order once for any other (a trade of an order the venue no
longer serves keeps an empty client id). It returns at most 1,000 rows from ``since_ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any, Literal, TypeVar

import ccxt.async_support as ccxt_async

from s4_router.adapters.exchange import ccxt_orders
from s4_router.adapters.exchange.base import (
    AssetBalance,
    BookTop,
    ConditionalOrder,
    ExchangeNetworkError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    InvalidOrder,
    OcoOrderList,
    OcoRequest,
    OrderNotFound,
    PlaceOrderRequest,
    Position,
    ProtectionUnsupported,
)
from s4_router.adapters.exchange.ccxt_setup import (
    BINANCE_WEIGHT_LIMITS,
    binance_market_info,
    client_config,
    load_mexc_markets,
    used_weight_1m,
)
from s4_router.adapters.exchange.errors_ccxt import install_error_hooks, translate
from svckit.ccxt_hosts import point_client
from tradekit.enums import Market
from tradekit.instrument import Instrument

log = logging.getLogger(__name__)

T = TypeVar("T")
ExchangeId = Literal["binance", "binanceusdm", "mexc"]
BINANCE_FAMILY = frozenset({"binance", "binanceusdm"})

SPOT, FUT = Market.SPOT, Market.FUT
_FUT_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_COID_CACHE = 50_000


class CcxtExchange(ExchangePort):
    """The exchange port over ccxt (binance / binanceusdm / mexc)."""

    def __init__(
        self,
        exchange_id: ExchangeId,
        *,
        api_key: str,
        api_secret: str,
        testnet: bool = False,
        base_url: str | None = None,
        timeout_ms: int = 10_000,
        enable_rate_limit: bool = True,
        recv_window_ms: int = 5_000,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if exchange_id not in ("binance", "binanceusdm", "mexc"):
            raise ValueError(f"unsupported ccxt exchange {exchange_id!r}")
        self.venue = exchange_id
        self._binance = exchange_id in BINANCE_FAMILY
        config = client_config(
            api_key=api_key,
            api_secret=api_secret,
            timeout_ms=timeout_ms,
            enable_rate_limit=enable_rate_limit,
            recv_window_ms=recv_window_ms,
            options=options,
        )

        def build(name: str) -> Any:
            client = getattr(ccxt_async, name)(dict(config))
            install_error_hooks(client)
            return point_client(client, testnet=testnet, base_url=base_url)

        if testnet and self._binance and not config["options"].get("disableFuturesSandboxWarning"):
            # ccxt 4.5 refuses signed calls to the retired futures testnet (NotSupported, seen
            # here as InvalidOrder): say so at start-up rather than on the first order.
            log.warning(
                "S4_TESTNET with Binance futures: ccxt refuses the futures testnet; pass "
                "options={'disableFuturesSandboxWarning': True} to use it anyway",
                extra={"venue": exchange_id},
            )
        if self._binance:
            self._clients: dict[Market, Any] = {SPOT: build("binance"), FUT: build("binanceusdm")}
        else:
            one = build(exchange_id)
            self._clients = {SPOT: one, FUT: one}
        self.primary_market = FUT if exchange_id == "binanceusdm" else SPOT
        self._primary = self._clients[self.primary_market]
        # Binance limits spot (6,000/min) and USD-M futures (2,400/min) weight separately.
        self.separate_weight_pools = self._binance
        self._symbols: dict[tuple[Market, str], str] = {}
        self._instruments: dict[str, Instrument] = {}
        self._coids: dict[tuple[Market, str], str] = {}
        self._closed = False

    # ---- request weight ----------------------------------------------------------------------
    def weight_limit_1m(self, market: Market) -> int | None:
        return BINANCE_WEIGHT_LIMITS[market] if self._binance else None

    def used_weight_1m(self, market: Market) -> int | None:
        """Of the market's client's latest answer (ccxt keeps the last response's headers)."""
        return used_weight_1m(getattr(self._clients[market], "last_response_headers", None))

    # ---- plumbing ----------------------------------------------------------------------------
    def _distinct_clients(self) -> list[Any]:
        return list({id(c): c for c in self._clients.values()}.values())  # MEXC: one for both

    async def _call(
        self, fn: Callable[[], Awaitable[T]], *, submit: bool = False, client: Any = None
    ) -> T:
        if self._closed:
            raise ExchangeNetworkError("exchange adapter is closed")
        try:
            return await fn()
        except ccxt_async.BaseError as exc:
            err = translate(exc, submit=submit)
            if err.code == -1021 and client is not None:
                await self._sync_clock(client)
            raise err from exc

    async def _sync_clock(self, client: Any) -> None:
        """Best effort: learn the venue's clock offset (ccxt signs with it)."""
        try:
            await client.load_time_difference()
        except ccxt_async.BaseError as exc:
            log.warning("ccxt time sync failed", extra={"venue": self.venue, "error": str(exc)})

    def _symbol(self, market: Market, symbol: str) -> str:
        found = self._symbols.get((market, symbol))
        if found is None:
            raise InvalidOrder(f"{symbol} ({market}) is not a loaded market", code=-1121)
        return found

    def _check_grid(self, symbol: str, qty: Decimal | None, *prices: Decimal | None) -> None:
        """Refuse off-grid values instead of letting ccxt round them: its price_to_precision
        rounds to the *nearest* tick, which is not the side-aware rounding tradekit owns."""
        inst = self._instruments.get(symbol)
        if inst is None:
            return
        if qty is not None and not inst.is_on_step(qty):
            raise InvalidOrder(
                f"{symbol}: qty {qty} is not on stepSize {inst.stepSize}", code=-1013
            )
        for price in prices:
            if price is not None and not inst.is_on_tick(price):
                raise InvalidOrder(
                    f"{symbol}: price {price} is not on tickSize {inst.tickSize}", code=-1013
                )

    def _id(self, value: str | None) -> str | None:
        """Binance ids are integers; anything else cannot exist there (like SimExchange)."""
        if value is not None and self._binance and not value.isdigit():
            raise OrderNotFound(f"unknown order id {value!r}", code=-2013)
        return value

    def _type_params(self, market: Market) -> dict[str, Any]:
        """MEXC's one client serves both markets: each call says which (Binance: one each)."""
        return {} if self._binance else {"type": "spot" if market is SPOT else "swap"}

    def _order(self, market: Market, o: Mapping[str, Any]) -> ExchangeOrder:
        """The port's record of a ccxt order; its client id is remembered (trade rows lack it)."""
        order = ccxt_orders.parse_order(market, o)
        if order.client_order_id:
            self._coids[(market, order.venue_order_id)] = order.client_order_id
            if len(self._coids) > _COID_CACHE:
                del self._coids[next(iter(self._coids))]
        return order

    # ---- the port ----------------------------------------------------------------------------
    async def load_markets(self, instruments: Sequence[Instrument]) -> None:
        """Markets from `instruments` (no venue discovery); on MEXC, the venue's lists of the
        market types `instruments` trade; with no instruments, ccxt's own ``load_markets()``."""
        self._instruments.update({i.symbol: i for i in instruments})
        if self._binance and not instruments:
            for market, types in ((SPOT, ["spot"]), (FUT, ["linear"])):
                client = self._clients[market]
                client.options["fetchMarkets"] = {"types": types}
                await self._call(partial(client.load_markets, True), client=client)
                for m in client.markets.values():
                    self._symbols[(market, m["id"])] = m["symbol"]
        elif self._binance:
            for market in (SPOT, FUT):
                client = self._clients[market]
                parsed = []
                for inst in instruments:
                    if market not in inst.markets:
                        continue
                    m = client.parse_market(binance_market_info(inst, market))
                    m["maker"], m["taker"] = float(inst.maker_fee), float(inst.taker_fee)
                    parsed.append(m)
                    self._symbols[(market, inst.symbol)] = m["symbol"]
                client.set_markets(parsed)
        else:
            client = self._primary
            await self._call(partial(load_mexc_markets, client, instruments), client=client)
            for inst in instruments:
                pair = f"{inst.base_asset}/{inst.quote_asset}"
                for market, symbol in ((SPOT, pair), (FUT, f"{pair}:{inst.quote_asset}")):
                    if market in inst.markets and symbol in client.markets:
                        self._symbols[(market, inst.symbol)] = symbol
                    elif market in inst.markets:
                        log.warning(
                            "instrument not listed at the venue",
                            extra={"venue": self.venue, "symbol": symbol},
                        )
        for client in self._distinct_clients():
            await self._sync_clock(client)

    async def server_time_ms(self) -> int:
        client = self._primary
        return int(await self._call(client.fetch_time, client=client))

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        req.refuse_algo()
        client = self._clients[req.market]
        symbol = self._symbol(req.market, req.symbol)
        ccxt_type, amount, price, params = ccxt_orders.order_args(req)
        self._check_grid(req.symbol, req.qty, req.price)
        order = await self._call(
            lambda: client.create_order(
                symbol, ccxt_type, req.side.value.lower(), amount, price, params
            ),
            submit=True,
            client=client,
        )
        if not order.get("clientOrderId"):
            # MEXC's create answer carries no client id: it is the one we sent.
            order = {**order, "clientOrderId": req.client_order_id}
        return self._order(req.market, order)

    def _ref_params(
        self, venue_order_id: str | None, client_order_id: str | None
    ) -> tuple[str | None, dict[str, Any]]:
        oid = self._id(venue_order_id)
        return oid, ccxt_orders.ref_params(oid, client_order_id, binance=self._binance)

    async def cancel_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        client, sym = self._clients[market], self._symbol(market, symbol)
        oid, params = self._ref_params(venue_order_id, client_order_id)
        order = await self._call(lambda: client.cancel_order(oid, sym, params), client=client)
        return self._order(market, order)

    async def fetch_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        client, sym = self._clients[market], self._symbol(market, symbol)
        oid, params = self._ref_params(venue_order_id, client_order_id)
        order = await self._call(lambda: client.fetch_order(oid, sym, params), client=client)
        return self._order(market, order)

    async def fetch_open_orders(
        self, market: Market, symbol: str | None = None
    ) -> list[ExchangeOrder]:
        client = self._clients[market]
        sym = self._symbol(market, symbol) if symbol is not None else None
        params = self._type_params(market)
        orders = await self._call(
            lambda: client.fetch_open_orders(sym, None, None, params), client=client
        )
        return [self._order(market, o) for o in orders]

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]:
        client, sym = self._clients[market], self._symbol(market, symbol)
        trades = await self._call(
            lambda: client.fetch_my_trades(sym, since_ms, 1000), client=client
        )
        out = [ccxt_orders.parse_trade(market, symbol, t, self._coids) for t in trades]
        # Binance's trade rows have no client order id: learn it from the order (once per
        # order this process has not seen, e.g. after a restart).
        unknown = {t.venue_order_id for t in out if not t.client_order_id}
        for oid in sorted(unknown):
            try:
                await self.fetch_order(market, symbol, venue_order_id=oid)
            except OrderNotFound:
                continue
        if unknown:
            out = [
                replace(t, client_order_id=self._coids.get((market, t.venue_order_id), ""))
                if t.venue_order_id in unknown
                else t
                for t in out
            ]
        return out

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        client, sym = self._clients[market], self._symbol(market, symbol)
        limit = depth
        if market is FUT and self._binance:
            limit = next((n for n in _FUT_DEPTH_LIMITS if n >= depth), _FUT_DEPTH_LIMITS[-1])
        book = await self._call(lambda: client.fetch_order_book(sym, limit), client=client)
        now = int(client.milliseconds() - client.options.get("timeDifference", 0))
        return ccxt_orders.parse_book(symbol, book, depth, now_ms=now)

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(client.close() for client in self._distinct_clients()))

    # ---- beyond the port (same extension methods as SimExchange) -----------------------------
    async def set_leverage(self, symbol: str, leverage: int) -> int:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        answer = await self._call(lambda: client.set_leverage(leverage, sym), client=client)
        return int(answer.get("leverage", leverage))

    async def set_margin_type(self, symbol: str, margin_type: str) -> bool:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        mode = {"ISOLATED": "isolated", "CROSSED": "cross", "CROSS": "cross"}.get(
            margin_type.upper()
        )
        if mode is None:
            raise InvalidOrder(f"unknown margin type {margin_type!r}")
        try:
            answer = await self._call(lambda: client.set_margin_mode(mode, sym), client=client)
        except InvalidOrder as exc:
            if exc.code == -4046:
                return False
            raise
        return not (isinstance(answer, Mapping) and str(answer.get("code")) == "-4046")

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        client = self._clients[FUT]
        syms = [self._symbol(FUT, s) for s in symbols] if symbols else None
        rows = await self._call(lambda: client.fetch_positions(syms), client=client)
        settings: dict[str, tuple[int, str]] = {}
        if self._binance:
            leverages = await self._call(lambda: client.fetch_leverages(syms), client=client)
            settings = ccxt_orders.parse_leverages(leverages)
        positions = (ccxt_orders.parse_position(p, settings) for p in rows)
        return [p for p in positions if p is not None]

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        client, params = self._clients[market], self._type_params(market)
        bal = await self._call(lambda: client.fetch_balance(params), client=client)
        return ccxt_orders.parse_balances(market, bal)

    # ---- spot OCO (Binance /api/v3/orderList/oco) -----------------------------------------
    def _oco_client(self) -> Any:
        if not self._binance:
            raise ProtectionUnsupported(f"{self.venue}: native OCO lists are not supported")
        return self._clients[SPOT]

    async def _order_list(self, answer: Mapping[str, Any]) -> OcoOrderList:
        client = self._clients[SPOT]
        symbol = str(answer.get("symbol"))
        market = client.markets_by_id.get(symbol, [None])[0] if client.markets_by_id else None
        reports = answer.get("orderReports")
        if reports:
            legs = [self._order(SPOT, client.parse_order(r, market)) for r in reports]
        else:  # GET orderList names the legs only: query each
            legs = [
                await self.fetch_order(SPOT, symbol, venue_order_id=str(leg["orderId"]))
                for leg in answer.get("orders") or []
            ]
        return ccxt_orders.order_list(answer, legs)

    async def place_oco(self, req: OcoRequest) -> OcoOrderList:
        client = self._oco_client()
        self._symbol(SPOT, req.symbol)
        self._check_grid(req.symbol, req.qty, req.limit_price, req.stop_price, req.stop_limit_price)
        request = ccxt_orders.oco_request(req)
        answer = await self._call(
            lambda: client.privatePostOrderListOco(request), submit=True, client=client
        )
        return await self._order_list(answer)

    async def fetch_order_list(
        self,
        order_list_id: str | None = None,
        *,
        symbol: str | None = None,
        list_client_order_id: str | None = None,
    ) -> OcoOrderList:
        client = self._oco_client()
        params: dict[str, Any] = (
            {"orderListId": self._id(order_list_id)}
            if order_list_id is not None
            else {"origClientOrderId": list_client_order_id}
        )
        answer = await self._call(lambda: client.privateGetOrderList(params), client=client)
        return await self._order_list(answer)

    async def cancel_order_list(self, symbol: str, order_list_id: str) -> OcoOrderList:
        client = self._oco_client()
        self._symbol(SPOT, symbol)
        lid = self._id(order_list_id)
        answer = await self._call(
            lambda: client.privateDeleteOrderList({"symbol": symbol, "orderListId": lid}),
            client=client,
        )
        return await self._order_list(answer)

    # ---- futures conditional orders (Binance /fapi/v1/algoOrder) ---------------------------
    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        amount, params = ccxt_orders.conditional_args(req)
        client, sym = self._clients[FUT], self._symbol(FUT, req.symbol)
        self._check_grid(req.symbol, None if req.close_position else req.qty, req.stop_price)
        order = await self._call(
            lambda: client.create_order(
                sym, req.type.value, req.side.value.lower(), amount, None, params
            ),
            submit=True,
            client=client,
        )
        return ccxt_orders.parse_conditional(order)

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        aid = self._id(algo_id)
        params = ccxt_orders.algo_params(client_algo_id)
        await self._call(lambda: client.cancel_order(aid, sym, params), client=client)
        # Binance answers a cancel with the ids only: read the order back for its state.
        return await self.fetch_conditional(symbol, algo_id=aid, client_algo_id=client_algo_id)

    async def fetch_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        aid = self._id(algo_id)
        params = ccxt_orders.algo_params(client_algo_id)
        order = await self._call(lambda: client.fetch_order(aid, sym, params), client=client)
        cond = ccxt_orders.parse_conditional(order)
        if cond.symbol != symbol:
            raise OrderNotFound("conditional order of another symbol", code=-2013)
        return cond

    async def fetch_open_conditionals(self, symbol: str | None = None) -> list[ConditionalOrder]:
        client = self._clients[FUT]
        sym = self._symbol(FUT, symbol) if symbol is not None else None
        orders = await self._call(
            lambda: client.fetch_open_orders(sym, None, None, {"trigger": True}), client=client
        )
        return [ccxt_orders.parse_conditional(o) for o in orders]


__all__ = ["CcxtExchange"]
