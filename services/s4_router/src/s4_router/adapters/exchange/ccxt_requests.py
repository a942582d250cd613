"""The port's requests → the arguments of ccxt's calls (unified API plus Binance params).

``clientOrderId`` (→ ``newClientOrderId`` / ``clientAlgoId``), ``postOnly`` (→ spot
``LIMIT_MAKER``, futures ``timeInForce=GTX``), ``reduceOnly``, ``triggerPrice`` + ``workingType``
+ ``closePosition`` for conditional orders (ccxt routes those to ``/fapi/v1/algoOrder``); spot
OCO lists as the raw ``/api/v3/orderList/oco`` request (ccxt has no unified OCO). Prices and
quantities go out as plain strings, never floats.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import InvalidOrder, PlaceOrderRequest
from s4_router.adapters.exchange.ccxt_setup import plain
from tradekit.enums import Market, OrderType, Side, TimeInForce

CONDITIONAL = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})


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
    if req.market is not Market.FUT or req.type not in CONDITIONAL:
        raise InvalidOrder("conditional orders are FUT STOP_MARKET/TAKE_PROFIT_MARKET")
    if req.stop_price is None:
        raise InvalidOrder("conditional order needs stop_price", code=-1102)
    params: dict[str, Any] = {
        "triggerPrice": plain(req.stop_price),
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


def ref_params(venue_order_id: str | None, client_order_id: str | None) -> dict[str, Any]:
    """Binance params naming an order by client id (and venue id, when both are known)."""
    params: dict[str, Any] = {}
    if client_order_id is not None:
        params["origClientOrderId"] = client_order_id
        if venue_order_id is not None:
            params["orderId"] = venue_order_id  # both sent: the venue checks they agree
    return params


def oco_request(
    symbol: str,
    side: Side,
    qty: Decimal,
    *,
    limit_price: Decimal,
    stop_price: Decimal,
    stop_limit_price: Decimal | None,
    list_client_order_id: str | None,
    limit_client_order_id: str | None,
    stop_client_order_id: str | None,
) -> dict[str, Any]:
    """Spot OCO: a LIMIT_MAKER take-profit leg + a STOP_LOSS(_LIMIT) leg."""
    limit_leg, stop_leg = ("above", "below") if side is Side.SELL else ("below", "above")
    request: dict[str, Any] = {
        "symbol": symbol,
        "side": side.value,
        "quantity": plain(qty),
        f"{limit_leg}Type": "LIMIT_MAKER",
        f"{limit_leg}Price": plain(limit_price),
        f"{stop_leg}Type": "STOP_LOSS_LIMIT" if stop_limit_price else "STOP_LOSS",
        f"{stop_leg}StopPrice": plain(stop_price),
        "newOrderRespType": "RESULT",
    }
    if stop_limit_price is not None:
        request[f"{stop_leg}Price"] = plain(stop_limit_price)
        request[f"{stop_leg}TimeInForce"] = "GTC"
    for key, value in (
        ("listClientOrderId", list_client_order_id),
        (f"{limit_leg}ClientOrderId", limit_client_order_id),
        (f"{stop_leg}ClientOrderId", stop_client_order_id),
    ):
        if value is not None:
            request[key] = value
    return request
