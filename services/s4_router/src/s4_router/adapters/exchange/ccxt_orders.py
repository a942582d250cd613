"""Order mapping between the exchange port and ccxt, both ways.

* Requests → ccxt arguments: unified API plus Binance ``params``: ``clientOrderId``
  (→ ``newClientOrderId`` / ``clientAlgoId``), ``postOnly`` (→ spot ``LIMIT_MAKER``, futures
  ``timeInForce=GTX``), ``reduceOnly``, ``triggerPrice`` + ``workingType`` + ``closePosition``
  for conditional orders (ccxt routes those to ``/fapi/v1/algoOrder``); spot OCO lists as the
  raw ``/api/v3/orderList/oco`` request (ccxt has no unified OCO). Numbers go out as plain
  strings, never floats.
* Answers → the port's records (:mod:`.base`), exactly: numbers are read from the venue's raw
  strings (``info``) when Binance sends them, so every Decimal is exact; ccxt's float fields are
  only a fallback (MEXC).

Pure functions: the client (:mod:`.ccxt_client`) calls the venue and keeps what it learns
(client order ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from s4_router.adapters.exchange.base import (
    AssetBalance,
    BookTop,
    ConditionalOrder,
    ExchangeOrder,
    ExchangeTrade,
    InvalidOrder,
    OcoOrderList,
    OcoRequest,
    PlaceOrderRequest,
    Position,
)
from s4_router.adapters.exchange.ccxt_setup import plain
from tradekit.enums import Liquidity, Market, OrderStatus, OrderType, Side, TimeInForce

SPOT, FUT = Market.SPOT, Market.FUT


# ---- requests → ccxt arguments -------------------------------------------------------------------
def order_args(req: PlaceOrderRequest) -> tuple[str, str, str | None, dict[str, Any]]:
    """(ccxt order type, amount, price, params) of a plain order (not a conditional one)."""
    params: dict[str, Any] = {"clientOrderId": req.client_order_id}
    price: str | None = None
    if req.type is OrderType.MARKET:
        ccxt_type = "market"
    elif req.type in (OrderType.LIMIT, OrderType.LIMIT_MAKER):
        ccxt_type = "limit"
        if req.price is None:
            raise InvalidOrder("a limit order needs a price", code=-1102)
        price = plain(req.price)
        if req.post_only or req.type is OrderType.LIMIT_MAKER:
            params["postOnly"] = True  # spot LIMIT_MAKER, futures timeInForce=GTX
        else:
            params["timeInForce"] = (req.time_in_force or TimeInForce.GTC).value
    else:
        raise InvalidOrder(f"{req.type} is not supported by place_order()", code=-1116)
    if req.reduce_only:
        params["reduceOnly"] = True
    return ccxt_type, plain(req.qty), price, params


def conditional_args(req: PlaceOrderRequest) -> tuple[str | None, dict[str, Any]]:
    """(amount, params) of a FUT STOP_MARKET / TAKE_PROFIT_MARKET (`stop_price` = trigger)."""
    params: dict[str, Any] = {
        "triggerPrice": plain(req.trigger()),
        "workingType": req.working_type or "MARK_PRICE",
        "clientOrderId": req.client_order_id,
    }
    if req.close_position:
        params["closePosition"] = True
        return None, params
    if req.reduce_only:
        params["reduceOnly"] = True
    return plain(req.qty), params


def algo_params(client_algo_id: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"trigger": True}
    if client_algo_id is not None:
        params["clientAlgoId"] = client_algo_id
    return params


def ref_params(
    venue_order_id: str | None, client_order_id: str | None, *, binance: bool = True
) -> dict[str, Any]:
    """Params naming an order by client id (on Binance with the venue id too, when both are
    known: the venue checks they agree). ccxt's mexc names it by `clientOrderId` (sent as
    origClientOrderId); given Binance's origClientOrderId it would also send orderId=None."""
    if not binance:
        return {} if client_order_id is None else {"clientOrderId": client_order_id}
    params: dict[str, Any] = {}
    if client_order_id is not None:
        params["origClientOrderId"] = client_order_id
        if venue_order_id is not None:
            params["orderId"] = venue_order_id
    return params


def oco_request(req: OcoRequest) -> dict[str, Any]:
    """The raw ``/api/v3/orderList/oco`` request of an :class:`.OcoRequest`."""
    limit_leg, stop_leg = ("above", "below") if req.side is Side.SELL else ("below", "above")
    request: dict[str, Any] = {
        "symbol": req.symbol,
        "side": req.side.value,
        "quantity": plain(req.qty),
        f"{limit_leg}Type": "LIMIT_MAKER",
        f"{limit_leg}Price": plain(req.limit_price),
        f"{stop_leg}Type": "STOP_LOSS_LIMIT" if req.stop_limit_price else "STOP_LOSS",
        f"{stop_leg}StopPrice": plain(req.stop_price),
        "newOrderRespType": "RESULT",
    }
    if req.stop_limit_price is not None:
        request[f"{stop_leg}Price"] = plain(req.stop_limit_price)
        request[f"{stop_leg}TimeInForce"] = "GTC"
    for key, value in (
        ("listClientOrderId", req.list_client_order_id),
        (f"{limit_leg}ClientOrderId", req.limit_client_order_id),
        (f"{stop_leg}ClientOrderId", req.stop_client_order_id),
    ):
        if value is not None:
            request[key] = value
    return request


# ---- answers → records --------------------------------------------------------------------------
RAW_STATUS = {
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
# Binance names our order types alike, but for spot's stop (STOP_LOSS: a stop-market).
RAW_TYPE = {t.value: t for t in OrderType} | {"STOP_LOSS": OrderType.STOP_MARKET}
UNIFIED_ALGO_STATUS = {
    "open": "NEW",
    "closed": "FINISHED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}


def dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def first(info: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = info.get(key)
        if value is not None and value != "":
            return value
    return None


def positive(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def plain_symbol(info: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    """Binance's symbol (``BTCUSDT``), also from ccxt's unified one (``BTC/USDT:USDT``, MEXC)."""
    symbol = str(first(info, "symbol") or row.get("symbol") or "")
    return symbol.split(":")[0].replace("/", "") if "/" in symbol else symbol


def parse_order(market: Market, o: Mapping[str, Any]) -> ExchangeOrder:
    """A ccxt order (Binance's raw fields first) as the port's record."""
    info: Mapping[str, Any] = o.get("info") or {}
    oid = str(first(info, "orderId") or o.get("id") or "")
    # A spot cancel answers the cancel's own id in clientOrderId, the order's in origClient…
    coid = str(first(info, "origClientOrderId", "clientOrderId") or o.get("clientOrderId") or "")
    filled = dec(first(info, "executedQty")) or dec(o.get("filled")) or Decimal(0)
    qty = dec(first(info, "origQty")) or dec(o.get("amount")) or Decimal(0)
    raw_status = first(info, "status")
    status = RAW_STATUS.get(str(raw_status)) if raw_status is not None else None
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
    raw_type = first(info, "type", "orderType")
    type_ = RAW_TYPE.get(str(raw_type)) if raw_type is not None else None
    if type_ is None:
        unified = str(o.get("type") or "").lower()
        if unified == "market":
            type_ = OrderType.MARKET
        elif market is SPOT and o.get("postOnly"):
            type_ = OrderType.LIMIT_MAKER
        else:
            type_ = OrderType.LIMIT
    cum = dec(first(info, "cummulativeQuoteQty", "cumQuote"))
    avg: Decimal | None
    if filled > 0 and cum is not None and cum > 0:
        avg = cum / filled
    else:
        avg = positive(dec(first(info, "avgPrice"))) or positive(dec(o.get("average")))
    ts = int(
        first(info, "updateTime", "transactTime", "time", "workingTime")
        or o.get("lastUpdateTimestamp")
        or o.get("timestamp")
        or 0
    )
    symbol = plain_symbol(info, o)
    side = Side(str(first(info, "side") or o.get("side") or "buy").upper())
    trades = tuple(
        ExchangeTrade(
            trade_id=str(f.get("tradeId")),
            venue_order_id=oid,
            client_order_id=coid,
            symbol=symbol,
            side=side,
            price=dec(f.get("price")) or Decimal(0),
            qty=dec(f.get("qty")) or Decimal(0),
            fee=dec(f.get("commission")) or Decimal(0),
            fee_asset=str(f.get("commissionAsset") or ""),
            liquidity=Liquidity.TAKER,  # fills in an order answer executed on arrival
            ts=ts,
        )
        for f in info.get("fills") or []
    )
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
        price=positive(dec(first(info, "price"))) or positive(dec(o.get("price"))),
        stop_price=positive(dec(first(info, "stopPrice"))) or positive(dec(o.get("triggerPrice"))),
        reduce_only=flag(info.get("reduceOnly", o.get("reduceOnly") or False)),
        ts=ts,
        trades=trades,
    )


def parse_trade(
    market: Market, symbol: str, t: Mapping[str, Any], client_ids: Mapping[tuple[Market, str], str]
) -> ExchangeTrade:
    """A ccxt trade; Binance's rows carry no client order id: `client_ids` (market, order id)
    holds those the client has seen."""
    info: Mapping[str, Any] = t.get("info") or {}
    oid = str(first(info, "orderId") or t.get("order") or "")
    raw_side = info.get("side")
    if raw_side is None and ("isBuyer" in info or "buyer" in info):
        raw_side = "BUY" if flag(info.get("isBuyer", info.get("buyer"))) else "SELL"
    side = Side(str(raw_side or t.get("side") or "buy").upper())
    maker = info.get("isMaker", info.get("maker"))
    is_maker = flag(maker) if maker is not None else t.get("takerOrMaker") == "maker"
    fee = t.get("fee") or {}
    return ExchangeTrade(
        trade_id=str(first(info, "id", "tradeId") or t.get("id") or ""),
        venue_order_id=oid,
        client_order_id=client_ids.get((market, oid), ""),
        symbol=symbol,
        side=side,
        price=dec(first(info, "price")) or dec(t.get("price")) or Decimal(0),
        qty=dec(first(info, "qty")) or dec(t.get("amount")) or Decimal(0),
        fee=dec(first(info, "commission")) or dec(fee.get("cost")) or Decimal(0),
        fee_asset=str(first(info, "commissionAsset") or fee.get("currency") or ""),
        liquidity=Liquidity.MAKER if is_maker else Liquidity.TAKER,
        ts=int(first(info, "time") or t.get("timestamp") or 0),
    )


def parse_conditional(o: Mapping[str, Any]) -> ConditionalOrder:
    """A futures algo order (``/fapi/v1/algoOrder``) as the port's record."""
    info: Mapping[str, Any] = o.get("info") or {}
    close = flag(info.get("closePosition", False))
    qty = dec(first(info, "quantity")) or dec(o.get("amount"))
    raw_type = str(first(info, "orderType", "type") or o.get("type") or "").upper()
    symbol = plain_symbol(info, o)
    status = first(info, "algoStatus") or UNIFIED_ALGO_STATUS.get(str(o.get("status")), "NEW")
    actual = first(info, "actualOrderId")
    return ConditionalOrder(
        algo_id=str(first(info, "algoId") or o.get("id")),
        client_algo_id=str(first(info, "clientAlgoId") or o.get("clientOrderId") or ""),
        symbol=symbol,
        side=Side(str(first(info, "side") or o.get("side") or "sell").upper()),
        type=OrderType(raw_type) if raw_type in OrderType.__members__ else OrderType.STOP_MARKET,
        trigger_price=dec(first(info, "triggerPrice", "stopPrice"))
        or dec(o.get("triggerPrice"))
        or Decimal(0),
        working_type=str(first(info, "workingType") or "MARK_PRICE"),
        qty=None if close else qty,
        reduce_only=flag(info.get("reduceOnly", o.get("reduceOnly") or False)),
        close_position=close,
        status=str(status),
        triggered_order_id=str(actual) if actual not in (None, "", 0, "0") else None,
        ts=int(first(info, "updateTime", "createTime") or o.get("timestamp") or 0),
    )


def parse_book(symbol: str, book: Mapping[str, Any], depth: int, *, now_ms: int) -> BookTop:
    """ccxt's order book (`now_ms`, venue time, when it carries no timestamp)."""

    def levels(rows: Sequence[Sequence[Any]]) -> tuple[tuple[Decimal, Decimal], ...]:
        return tuple((Decimal(str(r[0])), Decimal(str(r[1]))) for r in rows[:depth])

    ts = int(book.get("timestamp") or now_ms)
    return BookTop(symbol=symbol, ts=ts, bids=levels(book["bids"]), asks=levels(book["asks"]))


def parse_position(
    p: Mapping[str, Any], settings: Mapping[str, tuple[int, str]]
) -> Position | None:
    """A ccxt position (None when flat); `settings`: leverage and margin type per symbol."""
    info: Mapping[str, Any] = p.get("info") or {}
    symbol = plain_symbol(info, p)
    qty = dec(first(info, "positionAmt"))
    if qty is None:
        contracts = dec(p.get("contracts")) or Decimal(0)
        qty = contracts if p.get("side") != "short" else -contracts
    if qty == 0:
        return None
    leverage, margin_type = settings.get(
        symbol,
        (
            int(p.get("leverage") or 0),
            "ISOLATED" if p.get("marginMode") == "isolated" else "CROSSED",
        ),
    )
    return Position(
        symbol=symbol,
        qty=qty,
        entry_price=dec(first(info, "entryPrice")) or dec(p.get("entryPrice")) or Decimal(0),
        leverage=leverage,
        margin_type=margin_type,
        mark_price=dec(first(info, "markPrice")) or dec(p.get("markPrice")) or Decimal(0),
        unrealized_pnl=dec(first(info, "unRealizedProfit", "unrealizedProfit"))
        or dec(p.get("unrealizedPnl"))
        or Decimal(0),
    )


def parse_leverages(leverages: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """Binance's leverage brackets: (leverage, margin type) per symbol."""
    out: dict[str, tuple[int, str]] = {}
    for lev in leverages.values():
        linfo = lev.get("info") or {}
        out[str(linfo.get("symbol"))] = (
            int(linfo.get("leverage") or lev.get("longLeverage") or 0),
            str(linfo.get("marginType") or "CROSSED").upper(),
        )
    return out


def parse_balances(market: Market, bal: Mapping[str, Any]) -> dict[str, AssetBalance]:
    """As :meth:`.ExchangePort.fetch_balances` says (MEXC: ccxt's unified free/used)."""
    info: Mapping[str, Any] = bal.get("info") or {}
    out: dict[str, AssetBalance] = {}
    if market is SPOT and isinstance(info.get("balances"), list):
        for row in info["balances"]:
            asset = str(row.get("asset"))
            out[asset] = AssetBalance(
                asset, dec(row.get("free")) or Decimal(0), dec(row.get("locked")) or Decimal(0)
            )
        return out
    if market is FUT and isinstance(info.get("assets"), list):
        for row in info["assets"]:
            wallet = dec(row.get("walletBalance")) or Decimal(0)
            free = dec(row.get("availableBalance")) or Decimal(0)
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
            dec((bal.get(asset) or {}).get("free")) or Decimal(0),
            dec((bal.get(asset) or {}).get("used")) or Decimal(0),
        )
    return out


def order_list(answer: Mapping[str, Any], legs: Sequence[ExchangeOrder]) -> OcoOrderList:
    """A Binance spot OCO list with its legs in the port's order (see :class:`.OcoOrderList`)."""
    limit_legs = [o for o in legs if o.type is OrderType.LIMIT_MAKER]
    stop_legs = [o for o in legs if o.type is not OrderType.LIMIT_MAKER]
    side = legs[0].side if legs else Side.SELL
    # SELL: take-profit above, stop below; BUY: stop above, take-profit below.
    ordered = limit_legs + stop_legs if side is Side.SELL else stop_legs + limit_legs
    status = "ALL_DONE" if answer.get("listStatusType") == "ALL_DONE" else "EXEC_STARTED"
    return OcoOrderList(
        order_list_id=str(answer.get("orderListId")),
        list_client_order_id=str(answer.get("listClientOrderId") or ""),
        symbol=str(answer.get("symbol")),
        status=status,
        orders=tuple(ordered),
    )
