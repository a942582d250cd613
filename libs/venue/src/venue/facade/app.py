"""The Binance-compatible REST facade: an ASGI app over one :class:`venue.venue.Venue`.

A thin translation layer: every route parses Binance's parameters, calls one ``Venue`` method
and renders the result with :mod:`venue.facade.binance_json`. What ccxt uses of Binance spot
(``/api/v3``) and USDⓈ-M futures (``/fapi/v1|v2|v3``) is served: see :meth:`_Routes.table`.

HTTP behaviour, like Binance:

* ``SIGNED`` routes check ``X-MBX-APIKEY``, the HMAC-SHA256 ``signature`` and
  ``timestamp``/``recvWindow`` against the venue's server time (:mod:`venue.facade.auth`).
* Errors are ``{"code": -2010, "msg": "..."}`` with the venue error's HTTP status (400 for
  rejections, 401 for API-key errors, 429 + ``Retry-After`` for rate limits, 5xx for server
  faults). Every response carries ``X-MBX-USED-WEIGHT-1M``.
* Injected faults (:mod:`venue.faults`) happen at the HTTP level: a timeout (connect, before or
  after acceptance) stalls the response until the client gives up (or ``stall_s`` passes, then
  408 ``-1007``), *after* the venue applied the request for timeout-after-accept; a dropped
  acknowledgement sends the response headers and cuts the connection mid-body.

The venue is synchronous and not thread-safe: routes call it under ``app.state.venue_lock``.
Code that touches the same venue from another thread while the facade serves it should hold
that lock too.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from svckit.jsonutil import dumpb
from tradekit.enums import Market, OrderType, Side, TimeInForce
from tradekit.instrument import Instrument
from venue import errors
from venue.errors import VenueError, mandatory
from venue.facade import binance_json as bj
from venue.facade import mexc_json as mj
from venue.facade.auth import check_signed_request
from venue.facade.sim_routes import add_sim_routes, report_faults
from venue.klines import INTERVALS_MS
from venue.models import MarginType, TickerView, VenueOrder, WorkingType
from venue.venue import Venue

SPOT, FUT = Market.SPOT, Market.FUT

_NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_FUT_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
MSG_BAD_RESP_TYPE = "Illegal characters found in parameter 'newOrderRespType'."
MSG_BACKEND_TIMEOUT = (
    "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown."
)


def _illegal(name: str, legal: str) -> errors.VenueError:
    return VenueError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def _not_required(name: str) -> errors.VenueError:
    return VenueError(-1106, f"Parameter '{name}' sent when not required.")


@dataclass
class Ctx:
    """One request as a route sees it: merged parameters (query wins over body)."""

    venue: Venue
    market: Market
    params: dict[str, str]

    def opt(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def req(self, name: str) -> str:
        value = self.opt(name)
        if value is None:
            raise mandatory(name)
        return value

    def dec(self, name: str) -> Decimal | None:
        return None if self.opt(name) is None else self.dec_req(name)

    def dec_req(self, name: str) -> Decimal:
        raw = self.req(name)
        if not _NUMBER.match(raw):
            raise _illegal(name, _NUMBER.pattern)
        return Decimal(raw)

    def int_(self, name: str) -> int | None:
        raw = self.opt(name)
        if raw is None:
            return None
        if not raw.lstrip("-").isdigit():
            raise _illegal(name, "^-?[0-9]{1,20}$")
        return int(raw)

    def bool_(self, name: str) -> bool:
        raw = self.opt(name)
        if raw is None:
            return False
        if raw.lower() not in ("true", "false"):
            raise _illegal(name, "true, false")
        return raw.lower() == "true"

    def client_id(self, name: str) -> str | None:
        raw = self.opt(name)
        if raw is not None and not _CLIENT_ID.match(raw):
            raise _illegal(name, _CLIENT_ID.pattern)
        return raw

    def symbol(self) -> str | None:
        """The optional `symbol` (every symbol when absent)."""
        return None if self.opt("symbol") is None else self.sym()

    def sym(self) -> str:
        raw = self.req("symbol")
        inst = self.venue.instruments.get(raw)
        if inst is None or self.market not in inst.markets:
            raise VenueError(errors.BAD_SYMBOL, "Invalid symbol.")
        return raw

    def inst(self, symbol: str) -> Instrument:
        return self.venue.instruments[symbol]

    def one_of(
        self, name: str, allowed: Iterable[str], error: VenueError, default: str | None = None
    ) -> str:
        """A mandatory parameter (or its `default` when absent) that must be one of `allowed`."""
        raw = self.opt(name) or default
        if raw is None:
            raise mandatory(name)
        if raw not in allowed:
            raise error
        return raw

    def side(self) -> Side:
        return Side(self.one_of("side", ("BUY", "SELL"), VenueError(-1117, "Invalid side.")))

    def tif(self) -> TimeInForce | None:
        raw = self.opt("timeInForce")
        if raw is None:
            return None
        allowed = ("GTC", "IOC", "FOK", "GTX") if self.market is FUT else ("GTC", "IOC", "FOK")
        if raw not in allowed:
            raise VenueError(errors.INVALID_TIF, "Invalid timeInForce.")
        return TimeInForce(raw)

    def ref(self, id_name: str, client_id_name: str) -> tuple[int | None, str | None]:
        """What names an order, list or algo order: its venue id and/or its client id."""
        return self.int_(id_name), self.opt(client_id_name)

    @property
    def now(self) -> int:
        return self.venue.clock.now_ms()


Handler = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    market: Market
    signed: bool
    handler: Handler


class _ConnectionDropped(Exception):
    """Raised on purpose after a partial response: the server closes the connection."""


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _ConnectionDropped)


class _DroppedAckResponse(Response):
    """Headers and the first byte of the body, then the connection is cut: the venue did the
    work, the acknowledgement never arrives complete."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise _ConnectionDropped("acknowledgement dropped (injected fault)")


class _Routes:
    """The route handlers (one per Binance endpoint), registered in :meth:`table`."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._cancel_ids = itertools.count(1)

    def table(self) -> list[Route]:
        s, f = SPOT, FUT
        day, book, price, premium = (
            partial(self._tickers, render=render)
            for render in (bj.ticker_24hr, bj.book_ticker, bj.ticker_price, bj.premium_index)
        )
        both: dict[str, Handler] = {
            "ping": self.ping,
            "time": self.time,
            "exchangeInfo": self.exchange_info,
            "depth": self.depth,
            "ticker/24hr": day,
            "ticker/bookTicker": book,
            "ticker/price": price,
        }
        return [
            # ---- public endpoints both markets serve
            *(
                Route("GET", f"{base}/{name}", market, False, handler)
                for base, market in (("/api/v3", s), ("/fapi/v1", f))
                for name, handler in both.items()
            ),
            # ---- spot: public
            Route("GET", "/api/v3/klines", s, False, self.klines),
            # ---- spot: signed
            Route("POST", "/api/v3/order", s, True, self.spot_new_order),
            Route("DELETE", "/api/v3/order", s, True, self.spot_cancel_order),
            Route("GET", "/api/v3/order", s, True, self.spot_get_order),
            Route("GET", "/api/v3/openOrders", s, True, self.open_orders),
            Route("GET", "/api/v3/myTrades", s, True, self.my_trades),
            Route("GET", "/api/v3/account", s, True, self.spot_account),
            Route("POST", "/api/v3/orderList/oco", s, True, self.oco_new),
            Route("GET", "/api/v3/orderList", s, True, self.oco_get),
            Route("DELETE", "/api/v3/orderList", s, True, self.oco_cancel),
            Route("GET", "/api/v3/openOrderList", s, True, self.oco_open),
            # ---- futures: public
            Route("GET", "/fapi/v2/ticker/price", f, False, price),
            Route("GET", "/fapi/v1/premiumIndex", f, False, premium),
            # ---- futures: signed
            Route("POST", "/fapi/v1/order", f, True, self.fut_new_order),
            Route("DELETE", "/fapi/v1/order", f, True, self.fut_cancel_order),
            Route("GET", "/fapi/v1/order", f, True, self.fut_get_order),
            Route("GET", "/fapi/v1/openOrder", f, True, self.fut_get_open_order),
            Route("GET", "/fapi/v1/openOrders", f, True, self.open_orders),
            Route("GET", "/fapi/v1/userTrades", f, True, self.my_trades),
            Route("POST", "/fapi/v1/algoOrder", f, True, self.algo_new),
            Route("DELETE", "/fapi/v1/algoOrder", f, True, self.algo_cancel),
            Route("GET", "/fapi/v1/algoOrder", f, True, self.algo_get),
            Route("GET", "/fapi/v1/openAlgoOrders", f, True, self.algo_open),
            Route("GET", "/fapi/v2/account", f, True, lambda c: self.fut_account(c, v2=True)),
            Route("GET", "/fapi/v3/account", f, True, lambda c: self.fut_account(c, v2=False)),
            Route("GET", "/fapi/v2/balance", f, True, self.fut_balance),
            Route("GET", "/fapi/v3/balance", f, True, self.fut_balance),
            Route("GET", "/fapi/v2/positionRisk", f, True, self.position_risk_v2),
            Route("GET", "/fapi/v3/positionRisk", f, True, self.position_risk_v3),
            Route("GET", "/fapi/v1/symbolConfig", f, True, self.symbol_config),
            Route("GET", "/fapi/v1/leverageBracket", f, True, self.leverage_bracket),
            Route("POST", "/fapi/v1/leverage", f, True, self.leverage),
            Route("POST", "/fapi/v1/marginType", f, True, self.margin_type),
        ]

    # ---- public ---------------------------------------------------------------------------
    def time(self, c: Ctx) -> Any:
        return {"serverTime": self.venue.server_time_ms()}

    def _charge(self, op: str) -> None:
        """Weight for a request the venue itself does not serve (Binance charges every
        request: ping, exchangeInfo, leverageBracket); 429 past the minute's budget."""
        self.venue.limiter.charge(op, self.venue.clock.now_ms())

    def ping(self, c: Ctx) -> Any:
        self._charge("ping")
        return {}

    def exchange_info(self, c: Ctx) -> Any:
        self._charge("exchange_info")
        return bj.exchange_info(
            self.venue.instruments.values(),
            c.market,
            server_ms=self.venue.server_clock_ms(),
            weight_limit=self.venue.limiter.limit,
        )

    def depth(self, c: Ctx) -> Any:
        sym = c.sym()
        limit = c.int_("limit") or (500 if c.market is FUT else 100)
        if c.market is FUT and limit not in _FUT_DEPTH_LIMITS:
            raise _illegal("limit", ", ".join(map(str, _FUT_DEPTH_LIMITS)))
        if not 1 <= limit <= 5000:
            raise _illegal("limit", "1-5000")
        view = self.venue.book(c.market, sym, limit)
        return bj.depth(view, c.market, c.inst(sym), update_id=view.ts)

    def _tickers(self, c: Ctx, render: Callable[[TickerView, Market, Instrument], Any]) -> Any:
        sym = c.symbol()
        syms = self.venue.symbols(c.market) if sym is None else [sym]
        rows = [render(self.venue.ticker(c.market, s), c.market, c.inst(s)) for s in syms]
        return rows if sym is None else rows[0]

    def klines(self, c: Ctx) -> Any:
        sym = c.sym()
        interval = c.req("interval")
        if interval not in INTERVALS_MS:
            raise VenueError(-1120, "Invalid interval.")
        limit = c.int_("limit") or 500
        if not 1 <= limit <= 1000:
            raise _illegal("limit", "1-1000")
        bars = self.venue.klines(
            sym, interval, limit=limit, start_ms=c.int_("startTime"), end_ms=c.int_("endTime")
        )
        return bj.klines(bars, INTERVALS_MS[interval], c.market, c.inst(sym))

    # ---- shared order plumbing ------------------------------------------------------------
    def open_orders(self, c: Ctx) -> Any:
        sym = c.symbol()
        orders = self.venue.open_orders(c.market, sym)
        if c.market is SPOT:
            return [bj.spot_order(o) for o in orders]
        return [bj.fut_order(o, c.inst(o.symbol), query=True) for o in orders]

    def my_trades(self, c: Ctx) -> Any:
        sym = c.sym()
        start, end = c.int_("startTime"), c.int_("endTime")
        order_id, from_id = c.int_("orderId"), c.int_("fromId")
        limit = min(c.int_("limit") or 500, 1000)
        trades = [
            t
            for t in report_faults(self.venue, self.venue.my_trades(c.market, sym, start))
            if (end is None or t.ts <= end)
            and (order_id is None or t.order_id == order_id)
            and (from_id is None or t.trade_id >= from_id)
        ]
        # From a start point: the first `limit`; otherwise the most recent `limit`.
        trades = trades[:limit] if (start is not None or from_id is not None) else trades[-limit:]
        inst = c.inst(sym)
        if c.market is SPOT:
            orders = self.venue.spot.orders
            return [
                bj.spot_trade(t, orders[t.order_id].order_list_id if t.order_id in orders else -1)
                for t in trades
            ]
        return [bj.fut_trade(t, inst) for t in trades]

    def _order_terms(
        self, c: Ctx, types: tuple[str, ...]
    ) -> tuple[OrderType, TimeInForce | None, Decimal, Decimal | None]:
        """A new order's type, timeInForce, quantity and price, checked in Binance's order."""
        type_ = OrderType(c.one_of("type", types, VenueError(-1116, "Invalid orderType.")))
        tif = c.tif()
        if type_ is OrderType.LIMIT and tif is None:
            raise mandatory("timeInForce")
        if c.market is SPOT and type_ is not OrderType.LIMIT and tif is not None:
            raise _not_required("timeInForce")  # futures ignore it
        qty = c.dec_req("quantity")  # quoteOrderQty is not supported by the venue
        price = c.dec("price")
        if type_ is OrderType.MARKET and price is not None:
            raise _not_required("price")
        if type_ is not OrderType.MARKET and price is None:
            raise mandatory("price")
        return type_, tif, qty, price

    def _order(self, c: Ctx, call: Callable[..., VenueOrder]) -> VenueOrder:
        """`call` (the venue's get_order or cancel_order) on the order the request names."""
        sym = c.sym()
        oid, coid = c.ref("orderId", "origClientOrderId")
        return call(c.market, sym, order_id=oid, client_order_id=coid)

    # ---- spot orders ----------------------------------------------------------------------
    def spot_new_order(self, c: Ctx) -> Any:
        sym, side = c.sym(), c.side()
        type_, tif, qty, price = self._order_terms(c, ("LIMIT", "MARKET", "LIMIT_MAKER"))
        if c.opt("stopPrice") is not None:
            raise _not_required("stopPrice")
        coid = c.client_id("newClientOrderId")
        default = "FULL" if type_ in (OrderType.MARKET, OrderType.LIMIT) else "ACK"
        resp_type = c.one_of(
            "newOrderRespType",
            ("ACK", "RESULT", "FULL"),
            VenueError(-1100, MSG_BAD_RESP_TYPE),
            default,
        )
        order = self.venue.place_order(
            SPOT,
            sym,
            side,
            type_,
            qty,
            price=price,
            time_in_force=tif,
            client_order_id=coid,
            reduce_only=c.bool_("reduceOnly"),
        )
        return bj.spot_new_order(order, resp_type, c.now)

    def spot_cancel_order(self, c: Ctx) -> Any:
        sym = c.sym()
        oid, coid = c.ref("orderId", "origClientOrderId")
        cancel_id = c.client_id("newClientOrderId") or f"cancel-{next(self._cancel_ids)}"
        order = self.venue.cancel_order(SPOT, sym, order_id=oid, client_order_id=coid)
        return bj.spot_cancel(order, cancel_id, c.now)

    def spot_get_order(self, c: Ctx) -> Any:
        return bj.spot_order(self._order(c, self.venue.get_order))

    def spot_account(self, c: Ctx) -> Any:
        balances = self.venue.balances()
        if c.bool_("omitZeroBalances"):
            balances = {a: b for a, b in balances.items() if b.total != 0}
        insts = list(self.venue.instruments.values())
        maker = min((i.maker_fee for i in insts), default=Decimal("0.001"))
        taker = min((i.taker_fee for i in insts), default=Decimal("0.001"))
        return bj.spot_account(balances, maker=maker, taker=taker, ts=c.now)

    # ---- spot OCO -------------------------------------------------------------------------
    def oco_new(self, c: Ctx) -> Any:
        sym, side = c.sym(), c.side()
        qty = c.dec_req("quantity")
        above, below = c.req("aboveType"), c.req("belowType")
        stops = ("STOP_LOSS", "STOP_LOSS_LIMIT")
        # The venue models LIMIT_MAKER take-profit legs (Binance also allows TAKE_PROFIT*).
        limit_leg, stop_leg = ("above", "below") if side is Side.SELL else ("below", "above")
        types = {"above": above, "below": below}
        if types[limit_leg] != "LIMIT_MAKER" or types[stop_leg] not in stops:
            raise VenueError(-1116, "Invalid orderType.")
        limit_price = c.dec_req(f"{limit_leg}Price")
        stop_price = c.dec_req(f"{stop_leg}StopPrice")
        stop_limit_price: Decimal | None = None
        if types[stop_leg] == "STOP_LOSS_LIMIT":
            stop_limit_price = c.dec_req(f"{stop_leg}Price")
            c.req(f"{stop_leg}TimeInForce")
        elif c.opt(f"{stop_leg}Price") is not None:
            raise _not_required(f"{stop_leg}Price")
        lst = self.venue.place_oco(
            sym,
            side,
            qty,
            limit_price=limit_price,
            stop_price=stop_price,
            stop_limit_price=stop_limit_price,
            list_client_order_id=c.client_id("listClientOrderId"),
            limit_client_order_id=c.client_id(f"{limit_leg}ClientOrderId"),
            stop_client_order_id=c.client_id(f"{stop_leg}ClientOrderId"),
        )
        return bj.order_list(lst, reports="NEW", transact_ms=c.now)

    def oco_get(self, c: Ctx) -> Any:
        lid, lcoid = c.ref("orderListId", "origClientOrderId")
        return bj.order_list(self.venue.get_order_list(lid, list_client_order_id=lcoid))

    def oco_cancel(self, c: Ctx) -> Any:
        sym = c.sym()
        lid, lcoid = c.ref("orderListId", "listClientOrderId")
        lst = self.venue.cancel_order_list(sym, lid, list_client_order_id=lcoid)
        return bj.order_list(lst, reports="CANCEL", transact_ms=c.now)

    def oco_open(self, c: Ctx) -> Any:
        return [bj.order_list(lst) for lst in self.venue.open_order_lists()]

    # ---- futures orders -------------------------------------------------------------------
    def _position_side(self, c: Ctx) -> None:
        ps = c.opt("positionSide")
        if ps not in (None, "BOTH"):
            raise VenueError(-4061, "Order's position side does not match user's setting.")

    def fut_new_order(self, c: Ctx) -> Any:
        sym, side = c.sym(), c.side()
        self._position_side(c)
        type_raw = c.req("type")
        if type_raw in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"):
            raise VenueError(
                -4120,
                "Order type not supported for this endpoint. "
                "Please use the Algo Order API endpoints instead.",
            )
        type_, tif, qty, price = self._order_terms(c, ("LIMIT", "MARKET"))
        if c.bool_("closePosition"):
            raise _not_required("closePosition")
        resp_type = c.one_of(
            "newOrderRespType", ("ACK", "RESULT"), VenueError(-1100, MSG_BAD_RESP_TYPE), "ACK"
        )
        order = self.venue.place_order(
            FUT,
            sym,
            side,
            type_,
            qty,
            price=price,
            time_in_force=tif if type_ is OrderType.LIMIT else None,
            client_order_id=c.client_id("newClientOrderId"),
            reduce_only=c.bool_("reduceOnly"),
        )
        inst = c.inst(sym)
        if resp_type == "ACK":
            return bj.fut_new_order_ack(order, inst)
        return bj.fut_order(order, inst, with_time=False)

    def fut_cancel_order(self, c: Ctx) -> Any:
        order = self._order(c, self.venue.cancel_order)
        return bj.fut_order(order, c.inst(order.symbol))

    def fut_get_order(self, c: Ctx) -> Any:
        order = self._order(c, self.venue.get_order)
        return bj.fut_order(order, c.inst(order.symbol), query=True)

    def fut_get_open_order(self, c: Ctx) -> Any:
        """`GET /fapi/v1/openOrder`: like the query, but a finished order does not exist."""
        order = self._order(c, self.venue.get_order)
        if not order.is_open:
            raise VenueError(errors.NO_SUCH_ORDER, errors.MSG_NO_SUCH_ORDER)
        return bj.fut_order(order, c.inst(order.symbol), query=True)

    # ---- futures algo (conditional) orders ----------------------------------------------
    def algo_new(self, c: Ctx) -> Any:
        c.one_of("algoType", ("CONDITIONAL",), _illegal("algoType", "CONDITIONAL"))
        sym, side = c.sym(), c.side()
        self._position_side(c)
        conditional = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
        type_raw = c.one_of("type", conditional, VenueError(-1116, "Invalid orderType."))
        legal = ", ".join(WorkingType)  # CONTRACT_PRICE is Binance's default
        working = c.one_of(
            "workingType", list(WorkingType), _illegal("workingType", legal), "CONTRACT_PRICE"
        )
        algo = self.venue.place_algo_order(
            sym,
            side,
            OrderType(type_raw),
            trigger_price=c.dec_req("triggerPrice"),
            qty=c.dec("quantity"),
            working_type=WorkingType(working),
            reduce_only=c.bool_("reduceOnly"),
            close_position=c.bool_("closePosition"),
            client_algo_id=c.client_id("clientAlgoId"),
        )
        return bj.algo_order(algo, c.inst(sym))

    def algo_cancel(self, c: Ctx) -> Any:
        sym = c.symbol()
        aid, caid = c.ref("algoId", "clientAlgoId")
        if sym is not None:
            # Binance identifies algo orders by id alone; a symbol that does not match is
            # treated as an unknown order rather than cancelling another market's order.
            current = self.venue.algo.orders.get(aid) if aid is not None else None
            if current is not None and current.symbol != sym:
                raise VenueError(errors.CANCEL_REJECTED, errors.MSG_UNKNOWN_ORDER)
        algo = self.venue.cancel_algo_order(algo_id=aid, client_algo_id=caid)
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    def _algo_query(self, a: Any) -> Any:
        actual: Decimal | None = None
        if a.triggered_order_id is not None:
            order: VenueOrder | None = self.venue.futures.orders.get(a.triggered_order_id)
            actual = order.avg_price if order is not None else None
        return bj.algo_order(a, self.venue.instruments[a.symbol], actual_price=actual, query=True)

    def algo_get(self, c: Ctx) -> Any:
        aid, caid = c.ref("algoId", "clientAlgoId")
        return self._algo_query(self.venue.get_algo_order(algo_id=aid, client_algo_id=caid))

    def algo_open(self, c: Ctx) -> Any:
        sym = c.symbol()
        return [self._algo_query(a) for a in self.venue.open_algo_orders(sym)]

    # ---- futures account ------------------------------------------------------------------
    def fut_account(self, c: Ctx, *, v2: bool) -> Any:
        info, positions = self.venue.futures_account_state()
        rows = [(p, c.inst(p.symbol)) for p in positions]
        return bj.fut_account(info, rows, asset=self.venue.futures_account.asset, ts=c.now, v2=v2)

    def fut_balance(self, c: Ctx) -> Any:
        info, _ = self.venue.futures_account_state()
        return bj.fut_balance(info, asset=self.venue.futures_account.asset, ts=c.now)

    def position_risk_v2(self, c: Ctx) -> Any:
        sym = c.symbol()
        return [
            bj.position_risk_v2(p, c.inst(p.symbol), c.now) for p in self.venue.position_risk(sym)
        ]

    def position_risk_v3(self, c: Ctx) -> Any:
        """Only symbols with a position or open orders, like Binance's v3."""
        sym = c.symbol()
        with_orders = {o.symbol for o in self.venue.futures.open_orders(sym)}
        return [
            bj.position_risk_v3(p, c.inst(p.symbol), c.now)
            for p in self.venue.position_risk(sym)
            if p.qty != 0 or p.symbol in with_orders
        ]

    def symbol_config(self, c: Ctx) -> Any:
        sym = c.symbol()
        return [bj.symbol_config(p) for p in self.venue.position_risk(sym)]

    def leverage_bracket(self, c: Ctx) -> Any:
        sym = c.symbol()
        self._charge("leverage_bracket")
        symbols = [sym] if sym else self.venue.symbols(FUT)
        max_lev = self.venue.futures_account.MAX_LEVERAGE
        return [bj.leverage_bracket(s, max_lev) for s in symbols]

    def leverage(self, c: Ctx) -> Any:
        sym = c.sym()
        lev = c.int_("leverage")
        if lev is None:
            raise mandatory("leverage")
        applied = self.venue.set_leverage(sym, lev)
        return {"leverage": applied, "maxNotionalValue": "1000000000", "symbol": sym}

    def margin_type(self, c: Ctx) -> Any:
        sym = c.sym()
        legal = ", ".join(MarginType)
        raw = c.one_of("marginType", list(MarginType), _illegal("marginType", legal))
        self.venue.set_margin_type(sym, MarginType(raw))
        return {"code": 200, "msg": "success"}


def _mexc_params(route: Route, params: dict[str, str]) -> None:
    """MEXC's inputs in the venue's terms: string order ids, MEXC interval names."""
    if "orderId" in params:
        # `C02__123` → `123`; anything else is passed on (and refused as the venue's id)
        params["orderId"] = params["orderId"].removeprefix(mj.ORDER_ID_PREFIX)
    if route.method == "POST" and route.path == "/api/v3/order":
        # MEXC has no newOrderRespType: every create answer carries origQty/price (the venue's
        # RESULT); Binance's default for LIMIT_MAKER, ACK, has neither.
        params["newOrderRespType"] = "RESULT"
        if params.get("type") == "LIMIT":
            params.setdefault("timeInForce", "GTC")  # MEXC has no timeInForce: a LIMIT is GTC
    if route.path == "/api/v3/klines" and "interval" in params:
        if params["interval"] not in mj.INTERVALS:
            raise VenueError(-1120, "Invalid interval.")
        params["interval"] = mj.INTERVALS[params["interval"]]


def _mexc_render(route: Route, result: Any, c: Ctx) -> Any:
    """The Binance-shaped answer of `route` re-rendered as MEXC sends it."""
    path, method, venue = route.path, route.method, c.venue
    if path == "/api/v3/exchangeInfo":
        spot = [i for i in venue.instruments.values() if SPOT in i.markets]
        return mj.exchange_info(spot, venue.server_clock_ms())
    if path == "/api/v3/depth":
        return mj.depth(result, c.now)
    if path == "/api/v3/ticker/24hr" and isinstance(result, list):
        return [mj.ticker_24hr(t) for t in result]
    if path == "/api/v3/ticker/24hr":
        return mj.ticker_24hr(result)
    if path == "/api/v3/klines":
        return mj.klines(result, INTERVALS_MS[c.params["interval"]])
    if path == "/api/v3/account":
        return mj.account(result)
    if path == "/api/v3/order":
        if method == "POST":
            return mj.new_order(result)
        return mj.cancel(result) if method == "DELETE" else mj.order(result)
    if path == "/api/v3/openOrders":
        return [mj.order(o) for o in result]
    if path == "/api/v3/myTrades":
        orders = venue.spot.orders
        return [
            mj.trade(t, orders[t["orderId"]].client_order_id if t["orderId"] in orders else None)
            for t in result
        ]
    return result


def create_facade(
    venue: Venue,
    *,
    api_key: str,
    api_secret: str,
    stall_s: float = 30.0,
    lock: threading.RLock | None = None,
    dialect: Literal["binance", "mexc"] = "binance",
) -> FastAPI:
    """The Binance-compatible ASGI app over `venue` (one API key pair, like one account).

    `stall_s`: how long an injected timeout holds the response when the client does not give
    up first (then HTTP 408, ``-1007``). `dialect="mexc"`: MEXC spot v3 instead (the same
    venue, MEXC's field names and JSON types: :mod:`venue.facade.mexc_json`).
    """
    mexc = dialect == "mexc"
    venue_lock = lock or threading.RLock()
    routes = _Routes(venue)
    app = FastAPI(
        title="venue Binance-compatible facade", openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.venue = venue
    app.state.venue_lock = venue_lock
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_DropFilter())

    def json_response(
        market: Market, body: Any, status: int = 200, extra: dict[str, str] | None = None
    ) -> Response:
        with venue_lock:
            used = str(venue.used_weight())
        hdrs = {"X-MBX-USED-WEIGHT-1M": used}
        if market is SPOT:
            hdrs["X-MBX-USED-WEIGHT"] = used
        hdrs.update(extra or {})
        return Response(
            content=dumpb(body), status_code=status, media_type="application/json", headers=hdrs
        )

    async def stall(request: Request) -> bool:
        """Hold the answer until the client disconnects (True) or `stall_s` passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stall_s
        while loop.time() < deadline:
            if await request.is_disconnected():
                return True
            await asyncio.sleep(0.005)
        return False

    def make_endpoint(route: Route) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            query = request.scope.get("query_string", b"").decode("latin-1")
            body = (await request.body()).decode("latin-1")
            try:
                if route.signed:
                    check_signed_request(
                        query=query,
                        body=body,
                        api_key_header=request.headers.get(
                            "x-mexc-apikey" if mexc else "x-mbx-apikey"
                        ),
                        api_key=api_key,
                        api_secret=api_secret,
                        server_time_ms=venue.server_clock_ms(),
                    )
                # Both parsed; a name in the query wins over the same name in the body.
                params = dict(parse_qsl(body, keep_blank_values=True))
                params.update(parse_qsl(query, keep_blank_values=True))
                if mexc:
                    _mexc_params(route, params)
                ctx = Ctx(venue=venue, market=route.market, params=params)
                with venue_lock:
                    result = route.handler(ctx)
                    if mexc:
                        result = _mexc_render(route, result, ctx)
                return json_response(route.market, result)
            except errors.AckDropped:
                return _DroppedAckResponse()
            except errors.VenueTimeout:
                if await stall(request):
                    return Response(status_code=408)  # nobody is listening any more
                body_ = {"code": errors.TIMEOUT, "msg": MSG_BACKEND_TIMEOUT}
                return json_response(route.market, body_, 408)
            except errors.RateLimitExceeded as exc:
                retry = str(max(1, round(exc.retry_after_s)))
                return json_response(route.market, exc.as_body(), 429, {"Retry-After": retry})
            except errors.VenueError as exc:
                return json_response(route.market, exc.as_body(), exc.http_status)

        endpoint.__name__ = f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}"
        return endpoint

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Unknown path / method: FastAPI's answer, with the weight header of every answer."""
        market = FUT if request.url.path.startswith("/fapi") else SPOT
        return json_response(market, {"detail": exc.detail}, exc.status_code)

    add_sim_routes(app, venue, lock=venue_lock, api_key=api_key)
    for route in routes.table():
        if mexc and (route.market is FUT or "rderList" in route.path):
            continue  # MEXC spot: no futures on this host, no OCO
        app.add_api_route(
            route.path,
            make_endpoint(route),
            methods=[route.method],
            include_in_schema=False,
            summary=f"Binance {route.method} {route.path}",
        )
    return app


__all__ = ["Ctx", "Route", "create_facade"]
