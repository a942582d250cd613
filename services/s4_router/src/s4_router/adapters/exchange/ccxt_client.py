"""ccxt adapter: :class:`CcxtExchange` puts Binance spot + USDⓈ-M futures (or MEXC) behind the
exchange port, through ``ccxt.async_support``.

* ``S4_EXCHANGE=binance`` or ``binanceusdm``: spot goes through ``ccxt.binance`` and futures
  through ``ccxt.binanceusdm`` (one API key; two clients so each keeps its own default market
  type and its own rate limiter, as Binance limits spot and futures separately).
  ``S4_EXCHANGE=mexc``: one ``ccxt.mexc`` client for both.
* ``testnet=True`` ⇒ ``set_sandbox_mode(True)`` on every client. ``base_url`` rewrites every
  entry of ``exchange.urls['api']`` to that host (the simulator's Binance facade in tests:
  the real ccxt code path runs end to end over real HTTP, and nothing can reach the internet).
* Markets come from our instrument_registry (:meth:`load_markets` builds Binance
  ``exchangeInfo`` entries from the Instruments and feeds them through ccxt's own
  ``parse_market`` + ``set_markets``), so start-up does not depend on venue discovery. MEXC,
  whose market shapes we cannot verify offline, still uses ``load_markets()``.
* ``enableRateLimit`` with ccxt's rolling-window limiter (Binance limits request weight per
  minute; the default leaky bucket would space every futures order 200 ms apart).
* Orders use ccxt's unified API and ``params``: ``clientOrderId`` (→ ``newClientOrderId`` /
  ``clientAlgoId``), ``postOnly`` (→ spot ``LIMIT_MAKER``, futures ``timeInForce=GTX``),
  ``reduceOnly``, ``triggerPrice`` + ``workingType`` + ``closePosition`` for conditional orders
  (ccxt routes those to ``/fapi/v1/algoOrder``). Spot OCO lists use the implicit
  ``/api/v3/orderList/oco`` endpoints (ccxt has no unified OCO).
* Numbers are read from the venue's raw strings (``info``) when Binance sends them, so every
  Decimal is exact; ccxt's float fields are only a fallback (MEXC).
* Errors: :mod:`.errors_ccxt` (ccxt's exception classes plus the HTTP status, Binance code and
  Retry-After captured by a hook on ``handle_errors``).

Binance's trade rows carry no client order id: ``fetch_my_trades`` fills it from orders this
process has seen, and queries the order once for any other (a trade of an order the venue no
longer serves keeps an empty client id). It returns at most 1,000 rows from ``since_ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async

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
    OrderNotFound,
    PlaceOrderRequest,
    Position,
    ProtectionUnsupported,
)
from s4_router.adapters.exchange.errors_ccxt import annotate, translate
from tradekit.enums import Liquidity, Market, OrderStatus, OrderType, Side, TimeInForce
from tradekit.instrument import Instrument

log = logging.getLogger(__name__)

T = TypeVar("T")
ExchangeId = Literal["binance", "binanceusdm", "mexc"]
BINANCE_FAMILY = frozenset({"binance", "binanceusdm"})

SPOT, FUT = Market.SPOT, Market.FUT
_CONDITIONAL = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})
_FUT_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_COID_CACHE = 50_000
_BINANCE_WEIGHT_LIMITS = {SPOT: 6_000, FUT: 2_400}  # REQUEST_WEIGHT per minute (exchangeInfo)
# Binance's advertised order types (ccxt validates createOrder types against market.info).
_SPOT_ORDER_TYPES = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]
_FUT_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]

_RAW_STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.ACCEPTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "CANCELLED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
_RAW_TYPE = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "LIMIT_MAKER": OrderType.LIMIT_MAKER,
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LOSS_LIMIT,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
}
_UNIFIED_ALGO_STATUS = {
    "open": "NEW",
    "closed": "FINISHED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}


# ---- small helpers -----------------------------------------------------------------------------
def _s(value: Decimal) -> str:
    """A Decimal as a plain string for ccxt (never exponent notation)."""
    return f"{value:f}"


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _first(info: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = info.get(key)
        if value is not None and value != "":
            return value
    return None


def _positive(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def binance_market_info(inst: Instrument, market: Market) -> dict[str, Any]:
    """The Binance ``exchangeInfo`` symbol entry of an instrument (what ccxt's
    ``parse_market`` reads: asset ids, contract fields, PRICE_FILTER / LOT_SIZE / notional
    filters and the advertised order types)."""
    tick, step = _s(inst.tickSize), _s(inst.stepSize)
    min_qty = _s(max(inst.minQty, inst.stepSize))
    default_max = "9000000" if market is SPOT else "1000000"  # Binance's nominal caps
    max_qty = _s(inst.maxQty) if inst.maxQty is not None else default_max
    filters: list[dict[str, Any]] = [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": max_qty, "stepSize": step},
    ]
    base: dict[str, Any] = {
        "symbol": inst.symbol,
        "status": "TRADING",
        "baseAsset": inst.base_asset,
        "quoteAsset": inst.quote_asset,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
    }
    if market is SPOT:
        filters.append(
            {
                "filterType": "NOTIONAL",
                "minNotional": _s(inst.minNotional),
                "maxNotional": "9000000",
            }
        )
        return {
            **base,
            "orderTypes": _SPOT_ORDER_TYPES,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "filters": filters,
        }
    filters.append(
        {"filterType": "MARKET_LOT_SIZE", "minQty": min_qty, "maxQty": max_qty, "stepSize": step}
    )
    filters.append({"filterType": "MIN_NOTIONAL", "notional": _s(inst.minNotional)})
    return {
        **base,
        "pair": inst.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "marginAsset": inst.quote_asset,
        "orderTypes": _FUT_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        "filters": filters,
    }


def _rewrite_urls(urls: Any, base_url: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` tree re-pointed at `base_url` (path kept)."""
    if isinstance(urls, str):
        return base_url.rstrip("/") + urlsplit(urls).path
    if isinstance(urls, dict):
        return {k: _rewrite_urls(v, base_url) for k, v in urls.items()}
    return urls


def _install_error_hooks(client: Any) -> None:
    """Annotate every exception ccxt raises from an HTTP answer with its status, Binance
    code/msg and Retry-After (ccxt's exception classes drop them)."""
    handle_errors = client.handle_errors
    handle_status = client.handle_http_status_code

    def hooked_errors(
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        headers: Any,
        body: Any,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        try:
            return handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )
        except Exception as exc:
            annotate(exc, http_status=code, headers=headers, response=response)
            raise

    def hooked_status(code: Any, reason: Any, url: Any, method: Any, body: Any) -> Any:
        try:
            return handle_status(code, reason, url, method, body)
        except Exception as exc:
            annotate(exc, http_status=code, headers=None, response=None)
            raise

    client.handle_errors = hooked_errors
    client.handle_http_status_code = hooked_status


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
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": api_secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "rateLimiterAlgorithm": "rollingWindow",
            "rollingWindowSize": 60_000,
            "options": {
                "adjustForTimeDifference": False,  # synced explicitly in load_markets()
                "recvWindow": recv_window_ms,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
                "fetchMargins": False,
                "fetchCurrencies": False,
                "crossMarginPairsData": [],
                "isolatedMarginPairsData": [],
                "setMarginMode": {"throwMarginModeAlreadySet": True},
                **dict(options or {}),
            },
        }

        def build(name: str) -> Any:
            client = getattr(ccxt_async, name)(config)
            _install_error_hooks(client)
            if testnet:
                client.set_sandbox_mode(True)
            if base_url is not None:
                client.urls["api"] = _rewrite_urls(client.urls["api"], base_url)
                if base_url.startswith("http://"):
                    client.timeout_on_exit = 0  # ccxt's 250 ms close() pause is for TLS
            return client

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
            self._primary = self._clients[FUT if exchange_id == "binanceusdm" else SPOT]
        else:
            one = build(exchange_id)
            self._clients = {SPOT: one, FUT: one}
            self._primary = one
        # Binance limits spot (6,000/min) and USD-M futures (2,400/min) weight separately.
        self.separate_weight_pools = self._binance
        self.primary_market = FUT if exchange_id == "binanceusdm" else SPOT
        self._symbols: dict[tuple[Market, str], str] = {}
        self._instruments: dict[str, Instrument] = {}
        self._coids: dict[tuple[Market, str], str] = {}
        self._closed = False

    # ---- request weight ----------------------------------------------------------------------
    def weight_limit_1m(self, market: Market) -> int | None:
        if not self._binance:
            return None
        return _BINANCE_WEIGHT_LIMITS[market]

    def used_weight_1m(self, market: Market) -> int | None:
        """``X-MBX-USED-WEIGHT-1M`` of the market's client's latest answer (ccxt keeps the
        headers of the last response; header names are matched case-insensitively)."""
        headers = getattr(self._clients[market], "last_response_headers", None)
        if not headers:
            return None
        for name, value in headers.items():
            if str(name).lower() == "x-mbx-used-weight-1m":
                try:
                    return int(str(value).split(",")[-1].strip())
                except ValueError:
                    return None
        return None

    # ---- plumbing ----------------------------------------------------------------------------
    def _distinct_clients(self) -> list[Any]:
        seen: list[Any] = []
        for c in self._clients.values():
            if all(c is not s for s in seen):
                seen.append(c)
        return seen

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

    def _remember(self, market: Market, venue_order_id: str, client_order_id: str) -> None:
        if not client_order_id:
            return
        self._coids[(market, venue_order_id)] = client_order_id
        if len(self._coids) > _COID_CACHE:
            del self._coids[next(iter(self._coids))]

    # ---- conversions -------------------------------------------------------------------------
    def _order(self, market: Market, o: Mapping[str, Any]) -> ExchangeOrder:
        info: Mapping[str, Any] = o.get("info") or {}
        oid = str(_first(info, "orderId") or o.get("id") or "")
        # A spot cancel answers the cancel's own id in clientOrderId, the order's in origClient…
        coid = str(
            _first(info, "origClientOrderId", "clientOrderId") or o.get("clientOrderId") or ""
        )
        filled = _dec(_first(info, "executedQty")) or _dec(o.get("filled")) or Decimal(0)
        qty = _dec(_first(info, "origQty")) or _dec(o.get("amount")) or Decimal(0)
        raw_status = _first(info, "status")
        status = _RAW_STATUS.get(str(raw_status)) if raw_status is not None else None
        if status is None:
            status = {
                "closed": OrderStatus.FILLED,
                "canceled": OrderStatus.CANCELED,
                "expired": OrderStatus.EXPIRED,
                "rejected": OrderStatus.REJECTED,
                "canceling": OrderStatus.PENDING_CANCEL,
            }.get(
                str(o.get("status")),
                OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED,
            )
        raw_type = _first(info, "type", "orderType")
        type_ = _RAW_TYPE.get(str(raw_type)) if raw_type is not None else None
        if type_ is None:
            unified = str(o.get("type") or "").lower()
            if unified == "market":
                type_ = OrderType.MARKET
            elif market is SPOT and o.get("postOnly"):
                type_ = OrderType.LIMIT_MAKER
            else:
                type_ = OrderType.LIMIT
        cum = _dec(_first(info, "cummulativeQuoteQty", "cumQuote"))
        avg: Decimal | None
        if filled > 0 and cum is not None and cum > 0:
            avg = cum / filled
        else:
            avg = _positive(_dec(_first(info, "avgPrice"))) or _positive(_dec(o.get("average")))
        ts = int(
            _first(info, "updateTime", "transactTime", "time", "workingTime")
            or o.get("lastUpdateTimestamp")
            or o.get("timestamp")
            or 0
        )
        symbol = str(_first(info, "symbol") or o.get("symbol") or "")
        if "/" in symbol:  # unified symbol (MEXC fallback)
            symbol = symbol.split(":")[0].replace("/", "")
        side = Side(str(_first(info, "side") or o.get("side") or "buy").upper())
        trades = tuple(
            ExchangeTrade(
                trade_id=str(f.get("tradeId")),
                venue_order_id=oid,
                client_order_id=coid,
                symbol=symbol,
                side=side,
                price=_dec(f.get("price")) or Decimal(0),
                qty=_dec(f.get("qty")) or Decimal(0),
                fee=_dec(f.get("commission")) or Decimal(0),
                fee_asset=str(f.get("commissionAsset") or ""),
                liquidity=Liquidity.TAKER,  # fills in an order answer executed on arrival
                ts=ts,
            )
            for f in info.get("fills") or []
        )
        self._remember(market, oid, coid)
        return ExchangeOrder(
            venue_order_id=oid,
            client_order_id=coid,
            market=market,
            symbol=symbol,
            side=side,
            type=type_,
            status=status,
            qty=qty,
            filled_qty=filled,
            avg_price=avg,
            price=_positive(_dec(_first(info, "price"))) or _positive(_dec(o.get("price"))),
            stop_price=_positive(_dec(_first(info, "stopPrice")))
            or _positive(_dec(o.get("triggerPrice"))),
            reduce_only=_bool(info.get("reduceOnly", o.get("reduceOnly") or False)),
            ts=ts,
            trades=trades,
        )

    def _trade(self, market: Market, symbol: str, t: Mapping[str, Any]) -> ExchangeTrade:
        info: Mapping[str, Any] = t.get("info") or {}
        oid = str(_first(info, "orderId") or t.get("order") or "")
        raw_side = info.get("side")
        if raw_side is None and ("isBuyer" in info or "buyer" in info):
            raw_side = "BUY" if _bool(info.get("isBuyer", info.get("buyer"))) else "SELL"
        side = Side(str(raw_side or t.get("side") or "buy").upper())
        maker = info.get("isMaker", info.get("maker"))
        is_maker = _bool(maker) if maker is not None else t.get("takerOrMaker") == "maker"
        fee = t.get("fee") or {}
        return ExchangeTrade(
            trade_id=str(_first(info, "id", "tradeId") or t.get("id") or ""),
            venue_order_id=oid,
            client_order_id=self._coids.get((market, oid), ""),
            symbol=symbol,
            side=side,
            price=_dec(_first(info, "price")) or _dec(t.get("price")) or Decimal(0),
            qty=_dec(_first(info, "qty")) or _dec(t.get("amount")) or Decimal(0),
            fee=_dec(_first(info, "commission")) or _dec(fee.get("cost")) or Decimal(0),
            fee_asset=str(_first(info, "commissionAsset") or fee.get("currency") or ""),
            liquidity=Liquidity.MAKER if is_maker else Liquidity.TAKER,
            ts=int(_first(info, "time") or t.get("timestamp") or 0),
        )

    def _conditional(self, o: Mapping[str, Any]) -> ConditionalOrder:
        info: Mapping[str, Any] = o.get("info") or {}
        close = _bool(info.get("closePosition", False))
        qty = _dec(_first(info, "quantity")) or _dec(o.get("amount"))
        raw_type = str(_first(info, "orderType", "type") or o.get("type") or "").upper()
        symbol = str(_first(info, "symbol") or o.get("symbol") or "")
        if "/" in symbol:
            symbol = symbol.split(":")[0].replace("/", "")
        status = _first(info, "algoStatus") or _UNIFIED_ALGO_STATUS.get(str(o.get("status")), "NEW")
        actual = _first(info, "actualOrderId")
        return ConditionalOrder(
            algo_id=str(_first(info, "algoId") or o.get("id")),
            client_algo_id=str(_first(info, "clientAlgoId") or o.get("clientOrderId") or ""),
            symbol=symbol,
            side=Side(str(_first(info, "side") or o.get("side") or "sell").upper()),
            type=OrderType(raw_type)
            if raw_type in OrderType.__members__
            else OrderType.STOP_MARKET,
            trigger_price=_dec(_first(info, "triggerPrice", "stopPrice"))
            or _dec(o.get("triggerPrice"))
            or Decimal(0),
            working_type=str(_first(info, "workingType") or "MARK_PRICE"),
            qty=None if close else qty,
            reduce_only=_bool(info.get("reduceOnly", o.get("reduceOnly") or False)),
            close_position=close,
            status=str(status),
            triggered_order_id=str(actual) if actual not in (None, "", 0, "0") else None,
            ts=int(_first(info, "updateTime", "createTime") or o.get("timestamp") or 0),
        )

    # ---- the port ----------------------------------------------------------------------------
    async def load_markets(self, instruments: Sequence[Instrument]) -> None:
        """Markets from `instruments` (no venue discovery); with no instruments, or on MEXC,
        ccxt's own ``load_markets()`` (the venue's exchangeInfo) is the fallback."""
        self._instruments.update({i.symbol: i for i in instruments})
        if self._binance and not instruments:
            await self._discover_binance()
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
            await self._call(client.load_markets, client=client)
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

    async def _discover_binance(self) -> None:
        for market, types in ((SPOT, ["spot"]), (FUT, ["linear"])):
            client = self._clients[market]
            client.options["fetchMarkets"] = {"types": types}
            await self._call(partial(client.load_markets, True), client=client)
            for m in client.markets.values():
                self._symbols[(market, m["id"])] = m["symbol"]

    async def server_time_ms(self) -> int:
        client = self._primary
        return int(await self._call(client.fetch_time, client=client))

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        if req.type in _CONDITIONAL:
            raise InvalidOrder(f"{req.type} is an algo order: use place_conditional()", code=-1116)
        client = self._clients[req.market]
        symbol = self._symbol(req.market, req.symbol)
        params: dict[str, Any] = {"clientOrderId": req.client_order_id}
        price: str | None = None
        if req.type is OrderType.MARKET:
            ccxt_type = "market"
        elif req.type in (OrderType.LIMIT, OrderType.LIMIT_MAKER):
            ccxt_type = "limit"
            if req.price is None:
                raise InvalidOrder("a limit order needs a price", code=-1102)
            price = _s(req.price)
            if req.post_only or req.type is OrderType.LIMIT_MAKER:
                params["postOnly"] = True  # spot LIMIT_MAKER, futures timeInForce=GTX
            else:
                params["timeInForce"] = (req.time_in_force or TimeInForce.GTC).value
        else:
            raise InvalidOrder(f"{req.type} is not supported by place_order()", code=-1116)
        if req.reduce_only:
            params["reduceOnly"] = True
        self._check_grid(req.symbol, req.qty, req.price)
        order = await self._call(
            lambda: client.create_order(
                symbol, ccxt_type, req.side.value.lower(), _s(req.qty), price, params
            ),
            submit=True,
            client=client,
        )
        return self._order(req.market, order)

    def _ref_params(
        self, venue_order_id: str | None, client_order_id: str | None
    ) -> tuple[str | None, dict[str, Any]]:
        oid = self._id(venue_order_id)
        params: dict[str, Any] = {}
        if client_order_id is not None:
            params["origClientOrderId"] = client_order_id
            if oid is not None:
                params["orderId"] = oid  # both sent: the venue checks they agree
        return oid, params

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
        params: dict[str, Any] = (
            {} if self._binance else {"type": "spot" if market is SPOT else "swap"}
        )
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
        out = [self._trade(market, symbol, t) for t in trades]
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

        def levels(rows: Sequence[Sequence[Any]]) -> tuple[tuple[Decimal, Decimal], ...]:
            return tuple((Decimal(str(r[0])), Decimal(str(r[1]))) for r in rows[:depth])

        ts = book.get("timestamp") or int(
            client.milliseconds() - client.options.get("timeDifference", 0)
        )
        return BookTop(
            symbol=symbol, ts=int(ts), bids=levels(book["bids"]), asks=levels(book["asks"])
        )

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(client.close() for client in self._distinct_clients()))

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- beyond the port (same extension methods as SimExchange) -----------------------------
    async def set_leverage(self, symbol: str, leverage: int) -> int:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        answer = await self._call(lambda: client.set_leverage(leverage, sym), client=client)
        return int(answer.get("leverage", leverage))

    async def set_margin_type(self, symbol: str, margin_type: str) -> bool:
        """ISOLATED | CROSSED. Idempotent: returns False when it already was (Binance -4046)."""
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
            for lev in leverages.values():
                linfo = lev.get("info") or {}
                settings[str(linfo.get("symbol"))] = (
                    int(linfo.get("leverage") or lev.get("longLeverage") or 0),
                    str(linfo.get("marginType") or "CROSSED").upper(),
                )
        out: list[Position] = []
        for p in rows:
            info: Mapping[str, Any] = p.get("info") or {}
            symbol = str(_first(info, "symbol") or p.get("symbol") or "")
            if "/" in symbol:
                symbol = symbol.split(":")[0].replace("/", "")
            qty = _dec(_first(info, "positionAmt"))
            if qty is None:
                contracts = _dec(p.get("contracts")) or Decimal(0)
                qty = contracts if p.get("side") != "short" else -contracts
            if qty == 0:
                continue
            lev_, mtype = settings.get(
                symbol,
                (
                    int(p.get("leverage") or 0),
                    "ISOLATED" if p.get("marginMode") == "isolated" else "CROSSED",
                ),
            )
            out.append(
                Position(
                    symbol=symbol,
                    qty=qty,
                    entry_price=_dec(_first(info, "entryPrice"))
                    or _dec(p.get("entryPrice"))
                    or Decimal(0),
                    leverage=lev_,
                    margin_type=mtype,
                    mark_price=_dec(_first(info, "markPrice"))
                    or _dec(p.get("markPrice"))
                    or Decimal(0),
                    unrealized_pnl=_dec(_first(info, "unRealizedProfit", "unrealizedProfit"))
                    or _dec(p.get("unrealizedPnl"))
                    or Decimal(0),
                )
            )
        return out

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        """Spot: free/locked per asset. Futures: per margin asset, free = available balance and
        locked = wallet − available (never negative), like SimExchange."""
        client = self._clients[market]
        params: dict[str, Any] = (
            {} if self._binance else {"type": "spot" if market is SPOT else "swap"}
        )
        bal = await self._call(lambda: client.fetch_balance(params), client=client)
        info: Mapping[str, Any] = bal.get("info") or {}
        out: dict[str, AssetBalance] = {}
        if market is SPOT and isinstance(info.get("balances"), list):
            for row in info["balances"]:
                asset = str(row.get("asset"))
                out[asset] = AssetBalance(
                    asset,
                    _dec(row.get("free")) or Decimal(0),
                    _dec(row.get("locked")) or Decimal(0),
                )
            return out
        if market is FUT and isinstance(info.get("assets"), list):
            for row in info["assets"]:
                wallet = _dec(row.get("walletBalance")) or Decimal(0)
                free = _dec(row.get("availableBalance")) or Decimal(0)
                if wallet == 0 and free == 0:
                    continue
                asset = str(row.get("asset"))
                out[asset] = AssetBalance(asset, free, max(wallet - free, Decimal(0)))
            return out
        for asset, row in (bal.get("total") or {}).items():  # unified fallback (MEXC)
            if row is None:
                continue
            out[asset] = AssetBalance(
                asset,
                _dec((bal.get(asset) or {}).get("free")) or Decimal(0),
                _dec((bal.get(asset) or {}).get("used")) or Decimal(0),
            )
        return out

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
        limit_legs = [o for o in legs if o.type is OrderType.LIMIT_MAKER]
        stop_legs = [o for o in legs if o.type is not OrderType.LIMIT_MAKER]
        side = legs[0].side if legs else Side.SELL
        # SELL: take-profit above, stop below; BUY: stop above, take-profit below.
        ordered = limit_legs + stop_legs if side is Side.SELL else stop_legs + limit_legs
        status = "ALL_DONE" if answer.get("listStatusType") == "ALL_DONE" else "EXEC_STARTED"
        return OcoOrderList(
            order_list_id=str(answer.get("orderListId")),
            list_client_order_id=str(answer.get("listClientOrderId") or ""),
            symbol=symbol,
            status=status,
            orders=tuple(ordered),
        )

    async def place_oco(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        *,
        limit_price: Decimal,
        stop_price: Decimal,
        stop_limit_price: Decimal | None = None,
        list_client_order_id: str | None = None,
        limit_client_order_id: str | None = None,
        stop_client_order_id: str | None = None,
    ) -> OcoOrderList:
        """Spot OCO: a LIMIT_MAKER take-profit leg + a STOP_LOSS(_LIMIT) leg."""
        client = self._oco_client()
        self._symbol(SPOT, symbol)
        self._check_grid(symbol, qty, limit_price, stop_price, stop_limit_price)
        limit_leg, stop_leg = ("above", "below") if side is Side.SELL else ("below", "above")
        request: dict[str, Any] = {
            "symbol": symbol,
            "side": side.value,
            "quantity": _s(qty),
            f"{limit_leg}Type": "LIMIT_MAKER",
            f"{limit_leg}Price": _s(limit_price),
            f"{stop_leg}Type": "STOP_LOSS_LIMIT" if stop_limit_price else "STOP_LOSS",
            f"{stop_leg}StopPrice": _s(stop_price),
            "newOrderRespType": "RESULT",
        }
        if stop_limit_price is not None:
            request[f"{stop_leg}Price"] = _s(stop_limit_price)
            request[f"{stop_leg}TimeInForce"] = "GTC"
        for key, value in (
            ("listClientOrderId", list_client_order_id),
            (f"{limit_leg}ClientOrderId", limit_client_order_id),
            (f"{stop_leg}ClientOrderId", stop_client_order_id),
        ):
            if value is not None:
                request[key] = value
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
        """FUT STOP_MARKET / TAKE_PROFIT_MARKET as an algo order (`stop_price` = trigger)."""
        if req.market is not FUT or req.type not in _CONDITIONAL:
            raise InvalidOrder("conditional orders are FUT STOP_MARKET/TAKE_PROFIT_MARKET")
        if req.stop_price is None:
            raise InvalidOrder("conditional order needs stop_price", code=-1102)
        client, sym = self._clients[FUT], self._symbol(FUT, req.symbol)
        self._check_grid(req.symbol, None if req.close_position else req.qty, req.stop_price)
        params: dict[str, Any] = {
            "triggerPrice": _s(req.stop_price),
            "workingType": req.working_type or "MARK_PRICE",
            "clientOrderId": req.client_order_id,
        }
        amount: str | None = None
        if req.close_position:
            params["closePosition"] = True
        else:
            amount = _s(req.qty)
            if req.reduce_only:
                params["reduceOnly"] = True
        order = await self._call(
            lambda: client.create_order(
                sym, req.type.value, req.side.value.lower(), amount, None, params
            ),
            submit=True,
            client=client,
        )
        return self._conditional(order)

    def _algo_params(self, client_algo_id: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"trigger": True}
        if client_algo_id is not None:
            params["clientAlgoId"] = client_algo_id
        return params

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        aid = self._id(algo_id)
        params = self._algo_params(client_algo_id)
        await self._call(lambda: client.cancel_order(aid, sym, params), client=client)
        # Binance answers a cancel with the ids only: read the order back for its state.
        return await self.fetch_conditional(symbol, algo_id=aid, client_algo_id=client_algo_id)

    async def fetch_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        client, sym = self._clients[FUT], self._symbol(FUT, symbol)
        aid = self._id(algo_id)
        params = self._algo_params(client_algo_id)
        order = await self._call(lambda: client.fetch_order(aid, sym, params), client=client)
        cond = self._conditional(order)
        if cond.symbol != symbol:
            raise OrderNotFound("conditional order of another symbol", code=-2013)
        return cond

    async def fetch_open_conditionals(self, symbol: str | None = None) -> list[ConditionalOrder]:
        client = self._clients[FUT]
        sym = self._symbol(FUT, symbol) if symbol is not None else None
        orders = await self._call(
            lambda: client.fetch_open_orders(sym, None, None, {"trigger": True}), client=client
        )
        return [self._conditional(o) for o in orders]


__all__ = ["CcxtExchange", "binance_market_info"]
