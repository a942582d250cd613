"""The MEXC spot v3 dialect of the facade: the Binance-shaped answers re-rendered with the
fields and JSON types real MEXC sends (as recorded by the ccxt project, see
`shared/data/ccxt-recorded/mexc.json`, and MEXC's spot v3 docs for what is not recorded).

What differs from Binance (docs/venue.md, "MEXC"):

* order ids are strings (`C02__<n>` here, MEXC's own prefix), trade ids strings;
* `clientOrderId` is `null` when the client sent none (Binance invents one);
* `orderListId` is the string `"-1"` in orders and trades, the number `-1` in a create answer;
* `time` / `updateTime` (orders, trades), `openTime` / `closeTime` (24h ticker) and the book's
  `lastUpdateId` / `timestamp` are strings; the 24h ticker's `count` is `null`;
* klines have 8 columns (no trade count / taker volumes) and the close time is the next open;
  intervals are MEXC's (`60m`, `4h`, `1d`, `1W`, `1M`; `1h` is not one of them);
* `timeInForce` is `null` in orders; there is no `workingTime`/`selfTradePreventionMode`;
* exchangeInfo: `status: "1"` (online), precisions as decimal counts, `baseSizePrecision` /
  `quoteAmountPrecision` (min quantity / min notional) as strings, no Binance `filters`;
* the API key travels in `X-MEXC-APIKEY`; there is no OCO and no futures on this host.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tradekit.instrument import Instrument
from venue.facade.binance_json import decimals

ORDER_ID_PREFIX = "C02__"
# MEXC kline intervals → the venue's (the same names, but for MEXC's hour)
INTERVALS = {**{i: i for i in ("1m", "5m", "15m", "30m", "4h", "1d")}, "60m": "1h"}


def order_id_out(oid: Any) -> str:
    return f"{ORDER_ID_PREFIX}{oid}"


def _coid(value: Any) -> str | None:
    # The venue names orders sent without a client id `venue-…`: MEXC answers null for those.
    if value is None or (isinstance(value, str) and value.startswith("venue-")):
        return None
    return str(value)


def exchange_info(instruments: Iterable[Instrument], server_ms: int) -> dict[str, Any]:
    symbols = [
        {
            "symbol": i.symbol,
            "status": "1",
            "baseAsset": i.base_asset,
            "baseAssetPrecision": decimals(i.stepSize),
            "quoteAsset": i.quote_asset,
            "quotePrecision": decimals(i.tickSize),
            "quoteAssetPrecision": decimals(i.tickSize),
            "baseCommissionPrecision": decimals(i.stepSize),
            "quoteCommissionPrecision": decimals(i.tickSize),
            "orderTypes": ["LIMIT", "MARKET", "LIMIT_MAKER"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "quoteAmountPrecision": str(i.minNotional),
            "baseSizePrecision": str(i.stepSize),
            "permissions": ["SPOT"],
            "filters": [],
            "maxQuoteAmount": "2000000",
            "makerCommission": str(i.maker_fee),
            "takerCommission": str(i.taker_fee),
            "quoteAmountPrecisionMarket": str(i.minNotional),
            "maxQuoteAmountMarket": "100000",
            "fullName": i.base_asset,
            "tradeSideType": 1,
        }
        for i in sorted(instruments, key=lambda x: x.symbol)
    ]
    return {
        "timezone": "CST",
        "serverTime": server_ms,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def depth(b: dict[str, Any], ts: int) -> dict[str, Any]:
    return {
        "lastUpdateId": str(b["lastUpdateId"]),
        "bids": b["bids"],
        "asks": b["asks"],
        "timestamp": str(ts),
    }


TICKER_KEYS = (
    "symbol",
    "priceChange",
    "priceChangePercent",
    "prevClosePrice",
    "lastPrice",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
)


def ticker_24hr(t: dict[str, Any]) -> dict[str, Any]:
    out = {k: t.get(k) for k in TICKER_KEYS}
    return out | {"openTime": str(t["openTime"]), "closeTime": str(t["closeTime"]), "count": None}


def klines(rows: list[list[Any]], interval_ms: int) -> list[list[Any]]:
    return [[r[0], r[1], r[2], r[3], r[4], r[5], r[0] + interval_ms, r[7]] for r in rows]


def account(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "makerCommission": None,
        "takerCommission": None,
        "buyerCommission": None,
        "sellerCommission": None,
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "updateTime": None,
        "accountType": "SPOT",
        "balances": [
            {"asset": b["asset"], "free": b["free"], "locked": b["locked"]} for b in a["balances"]
        ],
        "permissions": ["SPOT"],
    }


def new_order(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": o["symbol"],
        "orderId": order_id_out(o["orderId"]),
        "orderListId": -1,
        "price": o.get("price"),
        "origQty": o["origQty"],
        "type": o["type"],
        "side": o["side"],
        "transactTime": o["transactTime"],
    }


def _order_fields(o: dict[str, Any]) -> dict[str, Any]:
    """What MEXC's order and cancel answers share, in their order."""
    keys = ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status")
    return {**{k: o[k] for k in keys}, "timeInForce": None, "type": o["type"], "side": o["side"]}


def order(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": o["symbol"],
        "orderId": order_id_out(o["orderId"]),
        "orderListId": "-1",
        "clientOrderId": _coid(o.get("clientOrderId")),
        **_order_fields(o),
        "stopPrice": None,
        "icebergQty": None,
        "time": str(o["time"]),
        "updateTime": str(o["updateTime"]),
        "isWorking": True,
        "origQuoteOrderQty": o.get("origQuoteOrderQty", "0"),
    }


def cancel(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": o["symbol"],
        "origClientOrderId": _coid(o.get("origClientOrderId")),
        "orderId": order_id_out(o["orderId"]),
        "clientOrderId": _coid(o.get("origClientOrderId")),
        **_order_fields(o),
    }


def trade(t: dict[str, Any], client_order_id: str | None) -> dict[str, Any]:
    return {
        "symbol": t["symbol"],
        "id": str(t["id"]),
        "orderId": order_id_out(t["orderId"]),
        "orderListId": "-1",
        "price": t["price"],
        "qty": t["qty"],
        "quoteQty": t["quoteQty"],
        "commission": t["commission"],
        "commissionAsset": t["commissionAsset"],
        "time": str(t["time"]),
        "isBuyer": t["isBuyer"],
        "isMaker": t["isMaker"],
        "isBestMatch": True,
        "isSelfTrade": False,
        "clientOrderId": _coid(client_order_id),
    }
