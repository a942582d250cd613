"""Venue records → Binance REST JSON, field for field (spot ``/api/v3``, USDⓈ-M ``/fapi``).

Field names, order and formatting follow Binance's documented responses: spot decimals are
strings with 8 decimals (``"0.01000000"``); futures prices/quantities carry the symbol's tick/step
precision and computed amounts (``cumQuote``, ``commission``, ``realizedPnl``) are plain decimal
strings. Statuses use Binance's words (the venue's ACCEPTED is Binance's ``NEW``; an order
expired by self-trade prevention is ``EXPIRED_IN_MATCH``). Fields the venue does not model are
present with Binance's neutral values (``icebergQty`` "0", ``priceProtect`` false, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any

from tradekit.enums import Market, OrderStatus, OrderType, Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO
from venue.klines import Bar
from venue.models import (
    AlgoOrder,
    Balance,
    BookView,
    FuturesAccountInfo,
    ListStatus,
    OrderList,
    PositionInfo,
    TickerView,
    Trade,
    VenueOrder,
)

JSON = dict[str, Any]
Fmt = Callable[[Decimal | None], str]

_E8 = Decimal("0.00000001")
STP_MODE = "EXPIRE_MAKER"
FAR_FUTURE_DELIVERY = 4133404800000  # Binance's deliveryDate of perpetual contracts
SPOT_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"]
FUT_ORDER_TYPES = ["LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"]
FUT_TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX"]


# ---- number formatting -------------------------------------------------------------------------
def f8(value: Decimal | None) -> str:
    """Spot style: 8 decimals, always."""
    return f"{(value or ZERO).quantize(_E8, rounding=ROUND_HALF_EVEN):f}"


def plain(value: Decimal | None) -> str:
    """A computed amount as a plain decimal string without exponent (``"1.300002"``)."""
    d = (value or ZERO).quantize(_E8, rounding=ROUND_HALF_EVEN).normalize()
    return f"{d:f}" if d != 0 else "0"


def f8_or_0(value: Decimal | None) -> str:
    """Binance's futures account amounts: 8 decimals, but a zero is ``"0"``
    (``"initialMargin": "7.59405208"``, ``"isolatedMargin": "0"``)."""
    return f8(value) if value else "0"


def decimals(increment: Decimal) -> int:
    exp = increment.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def at(value: Decimal | None, increment: Decimal) -> str:
    """Futures style: formatted with the number of decimals of `increment` (tick or step)."""
    return f"{(value or ZERO):.{decimals(increment)}f}"


def _formats(market: Market, inst: Instrument) -> tuple[Fmt, Fmt]:
    """(price, quantity) formatters: spot's 8 decimals, futures' tick and step precision."""
    if market is Market.SPOT:
        return f8, f8
    return partial(at, increment=inst.tickSize), partial(at, increment=inst.stepSize)


# ---- vocabulary --------------------------------------------------------------------------------
def order_status(o: VenueOrder) -> str:
    if o.status is OrderStatus.ACCEPTED:
        return "NEW"
    if o.status is OrderStatus.EXPIRED and (o.expire_reason or "").startswith("self-trade"):
        return "EXPIRED_IN_MATCH"
    return o.status.value


def spot_type(type_: OrderType) -> str:
    # A spot OCO stop leg without a limit price is Binance's STOP_LOSS (market on trigger).
    return "STOP_LOSS" if type_ is OrderType.STOP_MARKET else type_.value


def _tif(o: VenueOrder) -> str:
    return o.time_in_force.value if o.time_in_force is not None else "GTC"


# ---- spot --------------------------------------------------------------------------------------
def spot_fill(t: Trade) -> JSON:
    return {
        "price": f8(t.price),
        "qty": f8(t.qty),
        "commission": f8(t.fee),
        "commissionAsset": t.fee_asset,
        "tradeId": t.trade_id,
    }


def spot_order(o: VenueOrder) -> JSON:
    """`GET /api/v3/order` and `GET /api/v3/openOrders` rows."""
    working = o.triggered
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": o.order_list_id,
        "clientOrderId": o.client_order_id,
        "price": f8(o.price),
        "origQty": f8(o.qty),
        "executedQty": f8(o.filled_qty),
        "cummulativeQuoteQty": f8(o.cum_quote),
        "status": order_status(o),
        "timeInForce": _tif(o),
        "type": spot_type(o.type),
        "side": o.side.value,
        "stopPrice": f8(o.stop_price),
        "icebergQty": f8(ZERO),
        "time": o.created_ts,
        "updateTime": o.updated_ts,
        "isWorking": working,
        "workingTime": o.created_ts if working else -1,
        "origQuoteOrderQty": f8(ZERO),
        "selfTradePreventionMode": STP_MODE,
    }


def spot_new_order(o: VenueOrder, resp_type: str, transact_ms: int) -> JSON:
    """`POST /api/v3/order` in the ACK / RESULT / FULL shapes (`stopPrice` only for stops)."""
    out: JSON = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": o.order_list_id,
        "clientOrderId": o.client_order_id,
        "transactTime": transact_ms,
    }
    if resp_type == "ACK":
        return out
    return {
        **out,
        "price": f8(o.price),
        "origQty": f8(o.qty),
        "executedQty": f8(o.filled_qty),
        "origQuoteOrderQty": f8(ZERO),
        "cummulativeQuoteQty": f8(o.cum_quote),
        "status": order_status(o),
        "timeInForce": _tif(o),
        "type": spot_type(o.type),
        "side": o.side.value,
        **({"stopPrice": f8(o.stop_price)} if o.stop_price is not None else {}),
        "workingTime": o.created_ts if o.triggered else -1,
        "selfTradePreventionMode": STP_MODE,
        **({"fills": [spot_fill(t) for t in o.trades]} if resp_type == "FULL" else {}),
    }


def spot_cancel(o: VenueOrder, cancel_client_id: str, transact_ms: int) -> JSON:
    """`DELETE /api/v3/order`: a new order's RESULT shape without ``workingTime``, where
    ``clientOrderId`` is the id of the *cancel* request; the order's own client id is
    ``origClientOrderId``."""
    result = spot_new_order(o, "RESULT", transact_ms)
    del result["workingTime"]
    own = {"symbol": o.symbol, "origClientOrderId": o.client_order_id}
    return {**own, **result, "clientOrderId": cancel_client_id}


def spot_trade(t: Trade, order_list_id: int = -1) -> JSON:
    """`GET /api/v3/myTrades` row."""
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": order_list_id,
        "price": f8(t.price),
        "qty": f8(t.qty),
        "quoteQty": f8(t.quote_qty),
        "commission": f8(t.fee),
        "commissionAsset": t.fee_asset,
        "time": t.ts,
        "isBuyer": t.side is Side.BUY,
        "isMaker": t.is_maker,
        "isBestMatch": True,
    }


def order_list(
    lst: OrderList, *, reports: str | None = None, transact_ms: int | None = None
) -> JSON:
    """`/api/v3/orderList*` (reports: None | "NEW" | "CANCEL")."""
    done = lst.status is ListStatus.ALL_DONE
    # Binance lists the stop leg first, then the LIMIT_MAKER leg.
    legs = sorted(lst.orders, key=lambda o: o.type is OrderType.LIMIT_MAKER)
    ts = transact_ms if transact_ms is not None else lst.updated_ts
    out: JSON = {
        "orderListId": lst.order_list_id,
        "contingencyType": "OCO",
        "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
        "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
        "listClientOrderId": lst.list_client_order_id,
        "transactionTime": ts,
        "symbol": lst.symbol,
        "orders": [
            {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id}
            for o in legs
        ],
    }
    if reports == "NEW":
        out["orderReports"] = [spot_new_order(o, "RESULT", ts) for o in legs]
    elif reports == "CANCEL":
        out["orderReports"] = [spot_cancel(o, o.client_order_id, ts) for o in legs]
    return out


def spot_account(balances: dict[str, Balance], *, maker: Decimal, taker: Decimal, ts: int) -> JSON:
    """`GET /api/v3/account`."""
    return {
        "makerCommission": int(maker * 10_000),
        "takerCommission": int(taker * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": f8(maker),
            "taker": f8(taker),
            "buyer": f8(ZERO),
            "seller": f8(ZERO),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": ts,
        "accountType": "SPOT",
        "balances": [
            {"asset": b.asset, "free": f8(b.free), "locked": f8(b.locked)}
            for b in balances.values()
        ],
        "permissions": ["SPOT"],
        "uid": 1,
    }


# ---- futures -----------------------------------------------------------------------------------
def fut_order(
    o: VenueOrder, inst: Instrument, *, with_time: bool = True, query: bool = False
) -> JSON:
    """`/fapi/v1/order` (DELETE, and POST with ``newOrderRespType=RESULT``); `query`: the
    shape of GET ``order`` / ``openOrder`` / ``openOrders``, which has no ``cumQty``."""
    avg = o.avg_price
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": order_status(o),
        "clientOrderId": o.client_order_id,
        "price": at(o.price, inst.tickSize) if o.price is not None else "0",
        "avgPrice": plain(avg) if avg is not None else at(ZERO, inst.tickSize),
        "origQty": at(o.qty, inst.stepSize),
        "executedQty": at(o.filled_qty, inst.stepSize),
        **({} if query else {"cumQty": at(o.filled_qty, inst.stepSize)}),
        "cumQuote": plain(o.cum_quote),
        "timeInForce": _tif(o),
        "type": o.type.value,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side.value,
        "positionSide": "BOTH",
        "stopPrice": at(o.stop_price, inst.tickSize) if o.stop_price is not None else "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.type.value,
        "priceMatch": "NONE",
        "selfTradePreventionMode": STP_MODE,
        "goodTillDate": 0,
        **({"time": o.created_ts} if with_time else {}),
        "updateTime": o.updated_ts,
    }


def fut_new_order_ack(o: VenueOrder, inst: Instrument) -> JSON:
    """``newOrderRespType=ACK`` (Binance's futures default): the order as accepted, before any
    execution is reported (a MARKET order still shows NEW and zero executed)."""
    return fut_order(o, inst, with_time=False) | {
        "status": "NEW",
        "avgPrice": at(ZERO, inst.tickSize),
        "executedQty": at(ZERO, inst.stepSize),
        "cumQty": at(ZERO, inst.stepSize),
        "cumQuote": "0",
        "updateTime": o.created_ts,
    }


def fut_trade(t: Trade, inst: Instrument) -> JSON:
    """`GET /fapi/v1/userTrades` row."""
    return {
        "buyer": t.side is Side.BUY,
        "commission": plain(t.fee),
        "commissionAsset": t.fee_asset,
        "id": t.trade_id,
        "maker": t.is_maker,
        "orderId": t.order_id,
        "price": at(t.price, inst.tickSize),
        "qty": at(t.qty, inst.stepSize),
        "quoteQty": plain(t.quote_qty),
        "realizedPnl": plain(t.realized_pnl),
        "marginAsset": inst.quote_asset,
        "side": t.side.value,
        "positionSide": "BOTH",
        "symbol": t.symbol,
        "time": t.ts,
    }


def algo_order(
    a: AlgoOrder, inst: Instrument, *, actual_price: Decimal | None = None, query: bool = False
) -> JSON:
    """`/fapi/v1/algoOrder` (POST answer; GET and openAlgoOrders add the actual order)."""
    actual = {
        "actualOrderId": str(a.triggered_order_id) if a.triggered_order_id else "",
        "actualPrice": plain(actual_price) if actual_price is not None else "0",
    }
    return {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.type.value,
        "symbol": a.symbol,
        "side": a.side.value,
        "positionSide": "BOTH",
        "timeInForce": "GTC",
        "quantity": at(a.qty, inst.stepSize),
        "algoStatus": a.status.value,
        **(actual if query else {}),
        "triggerPrice": at(a.trigger_price, inst.tickSize),
        "price": "0",
        "icebergQuantity": None,
        "selfTradePreventionMode": STP_MODE,
        "workingType": a.working_type.value,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": False,
        "reduceOnly": a.reduce_only,
        "createTime": a.created_ts,
        "updateTime": a.updated_ts,
        "triggerTime": a.trigger_ts or 0,
        "goodTillDate": 0,
    }


def position_risk_v3(p: PositionInfo, inst: Instrument, ts: int) -> JSON:
    """`GET /fapi/v3/positionRisk` row (no leverage/marginType since v3). Amounts as Binance
    renders them here: prices plain; mark price and unrealized profit with 8 decimals
    (``"0.00000000"`` too); margins and notional with 8 decimals, zeros ``"0"``."""
    notional = p.qty * p.mark_price
    isolated = p.initial_margin if p.margin_type.value == "ISOLATED" else ZERO
    return {
        "symbol": p.symbol,
        "positionSide": "BOTH",
        "positionAmt": at(p.qty, inst.stepSize),
        "entryPrice": plain(p.entry_price),
        "breakEvenPrice": plain(p.entry_price),
        "markPrice": f8(p.mark_price),
        "unRealizedProfit": f8(p.unrealized_pnl),
        "liquidationPrice": "0",
        "isolatedMargin": f8_or_0(isolated),
        "notional": f8_or_0(notional),
        "marginAsset": inst.quote_asset,
        "isolatedWallet": f8_or_0(isolated),
        "initialMargin": f8_or_0(p.initial_margin),
        "maintMargin": "0",
        "positionInitialMargin": f8_or_0(p.initial_margin),
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": ts if p.qty != 0 else 0,
    }


def position_risk_v2(p: PositionInfo, inst: Instrument, ts: int) -> JSON:
    """`GET /fapi/v2/positionRisk` row."""
    return {
        "entryPrice": plain(p.entry_price),
        "breakEvenPrice": plain(p.entry_price),
        "marginType": "isolated" if p.margin_type.value == "ISOLATED" else "cross",
        "isAutoAddMargin": "false",
        "isolatedMargin": plain(p.initial_margin) if p.margin_type.value == "ISOLATED" else "0",
        "leverage": str(p.leverage),
        "liquidationPrice": "0",
        "markPrice": plain(p.mark_price),
        "maxNotionalValue": "1000000000",
        "positionAmt": at(p.qty, inst.stepSize),
        "notional": plain(p.qty * p.mark_price),
        "isolatedWallet": plain(p.initial_margin) if p.margin_type.value == "ISOLATED" else "0",
        "symbol": p.symbol,
        "unRealizedProfit": plain(p.unrealized_pnl),
        "positionSide": "BOTH",
        "updateTime": ts if p.qty != 0 else 0,
    }


def symbol_config(p: PositionInfo) -> JSON:
    """`GET /fapi/v1/symbolConfig` row."""
    return {
        "symbol": p.symbol,
        "marginType": p.margin_type.value,
        "isAutoAddMargin": False,  # a boolean here (a string in positionRisk v2)
        "leverage": p.leverage,
        "maxNotionalValue": "1000000000",
    }


def leverage_bracket(symbol: str, max_leverage: int) -> JSON:
    """`GET /fapi/v1/leverageBracket` row: one bracket (the venue has no tiers)."""
    return {
        "symbol": symbol,
        "notionalCoef": 1.0,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": max_leverage,
                "notionalCap": 1_000_000_000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.004,
                "cum": 0.0,
            }
        ],
    }


def fut_account(
    info: FuturesAccountInfo,
    positions: Sequence[tuple[PositionInfo, Instrument]],
    *,
    asset: str,
    ts: int,
    v2: bool,
) -> JSON:
    """`GET /fapi/v3/account` (v2 adds trading flags and per-position leverage)."""
    margin_balance = info.wallet_balance + info.unrealized_pnl
    initial = info.position_initial_margin + info.open_order_initial_margin
    totals: JSON = {
        "totalInitialMargin": f8(initial),
        "totalMaintMargin": f8(ZERO),
        "totalWalletBalance": f8(info.wallet_balance),
        "totalUnrealizedProfit": f8(info.unrealized_pnl),
        "totalMarginBalance": f8(margin_balance),
        "totalPositionInitialMargin": f8(info.position_initial_margin),
        "totalOpenOrderInitialMargin": f8(info.open_order_initial_margin),
        "totalCrossWalletBalance": f8(info.wallet_balance),
        "totalCrossUnPnl": f8(info.unrealized_pnl),
        "availableBalance": f8(info.available_balance),
        "maxWithdrawAmount": f8(max(info.available_balance, ZERO)),
    }
    asset_row: JSON = {
        "asset": asset,
        "walletBalance": f8(info.wallet_balance),
        "unrealizedProfit": f8(info.unrealized_pnl),
        "marginBalance": f8(margin_balance),
        "maintMargin": f8(ZERO),
        "initialMargin": f8(initial),
        "positionInitialMargin": f8(info.position_initial_margin),
        "openOrderInitialMargin": f8(info.open_order_initial_margin),
        "crossWalletBalance": f8(info.wallet_balance),
        "crossUnPnl": f8(info.unrealized_pnl),
        "availableBalance": f8(info.available_balance),
        "maxWithdrawAmount": f8(max(info.available_balance, ZERO)),
    }
    asset_row |= {**({"marginAvailable": True} if v2 else {}), "updateTime": ts}
    rows: list[JSON] = []
    for p, inst in positions:
        row: JSON = {
            "symbol": p.symbol,
            "positionSide": "BOTH",
            "positionAmt": at(p.qty, inst.stepSize),
            "unrealizedProfit": f8(p.unrealized_pnl),
            "isolatedMargin": "0",
            "notional": f8_or_0(p.qty * p.mark_price),
            "isolatedWallet": "0",
            "initialMargin": f8_or_0(p.initial_margin),
            "maintMargin": "0",
            "updateTime": ts,
        }
        if v2:
            row |= {
                "leverage": str(p.leverage),
                "entryPrice": plain(p.entry_price),
                "isolated": p.margin_type.value == "ISOLATED",
                "positionInitialMargin": f8_or_0(p.initial_margin),
                "openOrderInitialMargin": "0",
                "maxNotional": "1000000000",
                "breakEvenPrice": plain(p.entry_price),
            }
        rows.append(row)
    v2_flags: JSON = {
        "feeTier": 0,
        "feeBurn": False,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }
    return {**(v2_flags if v2 else {}), **totals, "assets": [asset_row], "positions": rows}


def fut_balance(info: FuturesAccountInfo, *, asset: str, ts: int) -> list[JSON]:
    """`GET /fapi/v2|v3/balance`."""
    return [
        {
            "accountAlias": "SgsR",
            "asset": asset,
            "balance": plain(info.wallet_balance),
            "crossWalletBalance": plain(info.wallet_balance),
            "crossUnPnl": plain(info.unrealized_pnl),
            "availableBalance": plain(info.available_balance),
            "maxWithdrawAmount": plain(max(info.available_balance, ZERO)),
            "marginAvailable": True,
            "updateTime": ts,
        }
    ]


# ---- market data -------------------------------------------------------------------------------
def depth(view: BookView, market: Market, inst: Instrument, update_id: int) -> JSON:
    px, qx = _formats(market, inst)
    return {
        "lastUpdateId": update_id,
        **({"E": view.ts, "T": view.ts} if market is Market.FUT else {}),
        "bids": [[px(p), qx(q)] for p, q in view.bids],
        "asks": [[px(p), qx(q)] for p, q in view.asks],
    }


def _last(t: TickerView) -> Decimal:
    if t.last is not None:
        return t.last
    if t.bid is not None and t.ask is not None:
        return (t.bid[0] + t.ask[0]) / 2
    return ZERO


def _touch(t: TickerView, px: Fmt, qx: Fmt) -> JSON:
    bid, ask = t.bid or (None, None), t.ask or (None, None)
    return {
        "bidPrice": px(bid[0]),
        "bidQty": qx(bid[1]),
        "askPrice": px(ask[0]),
        "askQty": qx(ask[1]),
    }


def ticker_24hr(t: TickerView, market: Market, inst: Instrument) -> JSON:
    """The venue keeps no 24-hour statistics: open/high/low are the last price, volumes 0."""
    fmt, _ = _formats(market, inst)
    last, spot = _last(t), market is Market.SPOT
    zero = fmt(ZERO) if spot else "0"
    return {
        "symbol": t.symbol,
        "priceChange": fmt(ZERO),
        "priceChangePercent": "0.000",
        "weightedAvgPrice": fmt(last),
        **({"prevClosePrice": fmt(last)} if spot else {}),
        "lastPrice": fmt(last),
        "lastQty": zero,
        **(_touch(t, f8, f8) if spot else {}),
        "openPrice": fmt(last),
        "highPrice": fmt(last),
        "lowPrice": fmt(last),
        "volume": zero,
        "quoteVolume": zero,
        "openTime": t.ts - 86_400_000,
        "closeTime": t.ts,
        "firstId": -1,
        "lastId": -1,
        "count": 0,
    }


def book_ticker(t: TickerView, market: Market, inst: Instrument) -> JSON:
    fut = {"time": t.ts, "lastUpdateId": t.ts} if market is Market.FUT else {}
    return {"symbol": t.symbol, **_touch(t, *_formats(market, inst)), **fut}


def ticker_price(t: TickerView, market: Market, inst: Instrument) -> JSON:
    if market is Market.SPOT:
        return {"symbol": t.symbol, "price": f8(_last(t))}
    return {"symbol": t.symbol, "price": at(_last(t), inst.tickSize), "time": t.ts}


def premium_index(t: TickerView, market: Market, inst: Instrument) -> JSON:
    """`GET /fapi/v1/premiumIndex` (index price = mark: the venue has no index)."""
    mark = t.mark or ZERO
    return {
        "symbol": t.symbol,
        "markPrice": f"{mark:.8f}",
        "indexPrice": f"{mark:.8f}",
        "estimatedSettlePrice": f"{mark:.8f}",
        "lastFundingRate": f"{(t.funding_rate or ZERO):.8f}",
        "interestRate": "0.00010000",
        "nextFundingTime": t.next_funding_ts or 0,
        "time": t.ts,
    }


# ---- exchangeInfo ------------------------------------------------------------------------------
def _spot_symbol(inst: Instrument) -> JSON:
    min_qty = max(inst.minQty, inst.stepSize)
    return {
        "symbol": inst.symbol,
        "status": "TRADING",
        "baseAsset": inst.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": inst.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": SPOT_ORDER_TYPES,
        "icebergAllowed": False,
        "ocoAllowed": True,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": f8(inst.tickSize),
                "maxPrice": f8(Decimal("1000000")),
                "tickSize": f8(inst.tickSize),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": f8(min_qty),
                "maxQty": f8(inst.maxQty or Decimal("9000000")),
                "stepSize": f8(inst.stepSize),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": f8(inst.minNotional),
                "applyMinToMarket": True,
                "maxNotional": f8(Decimal("9000000")),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": STP_MODE,
        "allowedSelfTradePreventionModes": [STP_MODE],
    }


def _fut_symbol(inst: Instrument) -> JSON:
    min_qty = max(inst.minQty, inst.stepSize)
    lot = {
        "minQty": at(min_qty, inst.stepSize),
        "maxQty": at(inst.maxQty or Decimal("1000000"), inst.stepSize),
        "stepSize": at(inst.stepSize, inst.stepSize),
    }
    return {
        "symbol": inst.symbol,
        "pair": inst.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": FAR_FUTURE_DELIVERY,
        "onboardDate": 1_569_398_400_000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base_asset,
        "quoteAsset": inst.quote_asset,
        "marginAsset": inst.quote_asset,
        "pricePrecision": inst.price_precision or decimals(inst.tickSize),
        "quantityPrecision": inst.qty_precision or decimals(inst.stepSize),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": at(inst.tickSize, inst.tickSize),
                "maxPrice": at(Decimal("1000000"), inst.tickSize),
                "tickSize": at(inst.tickSize, inst.tickSize),
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": plain(inst.minNotional)},
        ],
        "orderTypes": FUT_ORDER_TYPES,
        "timeInForce": FUT_TIME_IN_FORCE,
    }


def exchange_info(
    instruments: Iterable[Instrument], market: Market, *, server_ms: int, weight_limit: int
) -> JSON:
    rate_limits = [
        {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": weight_limit,
        }
    ]
    if market is Market.SPOT:
        return {
            "timezone": "UTC",
            "serverTime": server_ms,
            "rateLimits": rate_limits,
            "exchangeFilters": [],
            "symbols": [_spot_symbol(i) for i in instruments if Market.SPOT in i.markets],
        }
    fut = [i for i in instruments if Market.FUT in i.markets]
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": None}
            for a in sorted({i.quote_asset for i in fut})
        ],
        "symbols": [_fut_symbol(i) for i in fut],
    }


def klines(bars: Sequence[Bar], interval_ms: int, market: Market, inst: Instrument) -> Any:
    """`GET /api/v3/klines` rows: [open time, o, h, l, c, volume, close time, quote volume,
    trades, taker buy base, taker buy quote, "0"] (the venue does not split taker volume)."""
    fmt, _ = _formats(market, inst)
    return [
        [
            b.open_time,
            fmt(b.open),
            fmt(b.high),
            fmt(b.low),
            fmt(b.close),
            f8(b.volume),
            b.open_time + interval_ms - 1,
            f8(b.quote_volume),
            b.trades,
            f8(ZERO),
            f8(ZERO),
            "0",
        ]
        for b in bars
    ]
