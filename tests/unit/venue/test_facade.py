"""The Binance-compatible facade over HTTP: signing, Binance error bodies and headers, faults at
the HTTP level, and response shapes field for field.

Most tests drive the ASGI app in-process (httpx ASGITransport); the dropped-acknowledgement
and client-timeout tests need a real socket and run the app under uvicorn on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.facade_server import FacadeServer
from tradekit.enums import Market, OrderStatus
from venue.facade import create_facade, sign
from venue.facade.auth import total_params
from venue.faults import FaultKind
from venue.venue import Venue

D = Decimal
KEY, SECRET = "test-key", "test-secret"
SYM = "TESTUSDT"


def signed(venue: Venue, params: dict[str, Any], *, ts: int | None = None, secret: str = SECRET):
    p = dict(params)
    p["timestamp"] = venue.server_clock_ms() if ts is None else ts
    qs = urlencode(p)
    return f"{qs}&signature={sign(qs, secret)}"


@pytest.fixture
def app_factory(venue: Venue) -> Callable[..., Any]:
    def build(**kw: Any) -> Any:
        return create_facade(venue, api_key=KEY, api_secret=SECRET, **kw)

    return build


@pytest.fixture
async def client(app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_factory(stall_s=0.05))
    async with httpx.AsyncClient(transport=transport, base_url="http://facade") as c:
        yield c


async def call(
    client: httpx.AsyncClient,
    venue: Venue,
    method: str,
    path: str,
    params: dict[str, Any],
    *,
    key: str | None = KEY,
    **kw: Any,
) -> httpx.Response:
    headers = {"X-MBX-APIKEY": key} if key else {}
    return await client.request(method, f"{path}?{signed(venue, params, **kw)}", headers=headers)


# ---- signing -----------------------------------------------------------------------------------
def test_sign_with_binance_documented_examples_matches_their_signatures() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    assert (
        sign(f"{query}&{body}", secret)
        == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )
    # Query string and body together: concatenated without a separator.
    payload, _ = total_params(query, body)
    assert sign(payload, secret) == (
        "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    )


async def test_signed_request_with_valid_signature_is_served(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(client, venue, "GET", "/api/v3/account", {})
    assert r.status_code == 200
    assert {b["asset"] for b in r.json()["balances"]} == {"USDT", "TEST"}


async def test_signed_request_with_bad_signature_answers_1022(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(client, venue, "GET", "/api/v3/account", {}, secret="wrong")
    assert (r.status_code, r.json()) == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )


async def test_signed_request_with_tampered_parameter_answers_1022(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    qs = signed(venue, {"symbol": SYM, "orderId": 1})
    r = await client.get(
        "/api/v3/order?" + qs.replace("orderId=1", "orderId=2"), headers={"X-MBX-APIKEY": KEY}
    )
    assert r.json()["code"] == -1022


async def test_signed_request_with_stale_timestamp_answers_1021(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(client, venue, "GET", "/api/v3/account", {}, ts=venue.server_clock_ms() - 5_001)
    assert (r.status_code, r.json()["code"]) == (400, -1021)
    assert r.json()["msg"] == "Timestamp for this request is outside of the recvWindow."


async def test_signed_request_with_wider_recv_window_accepts_older_timestamp(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    old = venue.server_clock_ms() - 20_000
    ok = await call(client, venue, "GET", "/api/v3/account", {"recvWindow": 30_000}, ts=old)
    assert ok.status_code == 200
    too_wide = await call(client, venue, "GET", "/api/v3/account", {"recvWindow": 60_001})
    assert too_wide.json()["code"] == -1131


async def test_signed_request_with_timestamp_a_second_ahead_answers_1021(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    ahead = venue.server_clock_ms() + 1_000
    r = await call(client, venue, "GET", "/api/v3/account", {}, ts=ahead)
    assert r.json() == {
        "code": -1021,
        "msg": "Timestamp for this request was 1000ms ahead of the server's time.",
    }
    # Server time skew counts: the venue's clock, not the caller's, decides.
    venue.server_time_skew_ms = 2_000
    assert (await call(client, venue, "GET", "/api/v3/account", {}, ts=ahead)).status_code == 200


async def test_signed_request_with_missing_or_unknown_api_key_answers_401(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    missing = await call(client, venue, "GET", "/api/v3/account", {}, key=None)
    assert (missing.status_code, missing.json()["code"]) == (401, -2014)
    unknown = await call(client, venue, "GET", "/api/v3/account", {}, key="other")
    assert (unknown.status_code, unknown.json()["code"]) == (401, -2015)


async def test_signed_post_with_parameters_in_body_is_accepted(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    body = signed(venue, {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.5"})
    r = await client.post(
        "/api/v3/order",
        content=body,
        headers={"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "FILLED"


# ---- headers and Binance error bodies ----------------------------------------------------------
async def test_responses_with_requests_carry_used_weight_header(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    first = await client.get("/api/v3/time")
    second = await client.get("/fapi/v1/depth", params={"symbol": SYM, "limit": 5})
    assert int(first.headers["x-mbx-used-weight-1m"]) == 1
    assert int(second.headers["x-mbx-used-weight-1m"]) == 3  # time 1 + futures depth(5) 2


async def test_request_over_weight_limit_answers_429_with_retry_after(venue: Venue) -> None:
    venue.limiter.limit = 2
    app = create_facade(venue, api_key=KEY, api_secret=SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
        assert (await c.get("/api/v3/time")).status_code == 200
        assert (await c.get("/api/v3/time")).status_code == 200
        r = await c.get("/api/v3/time")
    assert r.status_code == 429
    assert r.json()["code"] == -1003
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_rate_limit_fault_answers_429_and_server_error_fault_answers_503(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    venue.faults.script("time", FaultKind.RATE_LIMIT)
    r = await client.get("/api/v3/time")
    assert (r.status_code, r.json()["code"], r.headers["retry-after"]) == (429, -1003, "1")
    venue.faults.script("time", FaultKind.SERVER_ERROR)
    r = await client.get("/api/v3/time")
    assert r.status_code == 503
    assert r.json() == {"code": -1001, "msg": "Internal error; unable to process your request."}


async def test_rejected_order_answers_binance_code_and_status(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    order = {"symbol": SYM, "side": "BUY", "type": "LIMIT_MAKER", "price": "100.0"}
    r = await call(client, venue, "POST", "/api/v3/order", {**order, "quantity": "1"})
    assert (r.status_code, r.json()) == (
        400,
        {"code": -2010, "msg": "Order would immediately match and take."},
    )
    r = await call(
        client,
        venue,
        "POST",
        "/fapi/v1/order",
        {**order, "type": "LIMIT", "timeInForce": "GTX", "quantity": "1"},
    )
    assert r.json()["code"] == -5022


async def test_conditional_type_on_futures_order_endpoint_answers_4120(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(
        client,
        venue,
        "POST",
        "/fapi/v1/order",
        {"symbol": SYM, "side": "SELL", "type": "STOP_MARKET", "stopPrice": "90", "quantity": "1"},
    )
    assert r.json()["code"] == -4120


async def test_futures_depth_with_unsupported_limit_answers_1100(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/fapi/v1/depth", params={"symbol": SYM, "limit": 7})
    assert (r.status_code, r.json()["code"]) == (400, -1100)
    r = await client.get("/api/v3/depth", params={"symbol": "NOPEUSDT"})
    assert r.json() == {"code": -1121, "msg": "Invalid symbol."}


# ---- faults at the HTTP level ------------------------------------------------------------------
async def test_timeout_after_accept_stalls_then_408_and_the_order_exists(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    venue.faults.script("place", FaultKind.TIMEOUT_AFTER_ACCEPT)
    params = {"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    r = await call(
        client,
        venue,
        "POST",
        "/api/v3/order",
        {**params, "quantity": "1", "price": "90.0", "newClientOrderId": "amb-1"},
    )
    assert (r.status_code, r.json()["code"]) == (408, -1007)
    assert venue.get_order(Market.SPOT, SYM, client_order_id="amb-1").status is (
        OrderStatus.ACCEPTED
    )


async def test_timeout_before_accept_stalls_and_nothing_exists(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    venue.faults.script("place", FaultKind.TIMEOUT_BEFORE_ACCEPT)
    params = {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "1"}
    r = await call(client, venue, "POST", "/fapi/v1/order", {**params, "newClientOrderId": "x"})
    assert r.status_code == 408
    assert venue.open_orders(Market.FUT) == []
    assert venue.futures_account.positions() == []


@pytest.fixture
def server(app_factory: Callable[..., Any]) -> Any:
    with FacadeServer(app_factory(stall_s=5.0), log_level="critical") as srv:
        yield srv


async def test_dropped_ack_cuts_the_connection_after_the_order_was_applied(
    server: FacadeServer, venue: Venue
) -> None:
    venue.faults.script("place", FaultKind.DROPPED_ACK)
    params = {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "1"}
    qs = signed(venue, {**params, "newClientOrderId": "drop-1"})
    async with httpx.AsyncClient(base_url=server.url) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post(f"/api/v3/order?{qs}", headers={"X-MBX-APIKEY": KEY})
        # The server keeps serving; the order was filled before the answer was cut.
        r = await c.get(
            f"/api/v3/order?{signed(venue, {'symbol': SYM, 'origClientOrderId': 'drop-1'})}",
            headers={"X-MBX-APIKEY": KEY},
        )
    assert r.json()["status"] == "FILLED"


async def test_timeout_fault_over_a_socket_holds_the_answer_past_the_client_timeout(
    server: FacadeServer, venue: Venue
) -> None:
    venue.faults.script("time", FaultKind.TIMEOUT_BEFORE_ACCEPT)
    async with httpx.AsyncClient(base_url=server.url, timeout=0.3) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/fapi/v1/time")
        assert (await c.get("/fapi/v1/time")).json() == {"serverTime": venue.server_clock_ms()}


# ---- shapes ------------------------------------------------------------------------------------
SPOT_FULL_KEYS = [
    "symbol",
    "orderId",
    "orderListId",
    "clientOrderId",
    "transactTime",
    "price",
    "origQty",
    "executedQty",
    "origQuoteOrderQty",
    "cummulativeQuoteQty",
    "status",
    "timeInForce",
    "type",
    "side",
    "workingTime",
    "selfTradePreventionMode",
    "fills",
]


async def test_spot_market_order_answers_full_response_with_fills(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(
        client,
        venue,
        "POST",
        "/api/v3/order",
        {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "2", "newClientOrderId": "m1"},
    )
    body = r.json()
    assert list(body) == SPOT_FULL_KEYS
    assert (body["status"], body["executedQty"], body["cummulativeQuoteQty"]) == (
        "FILLED",
        "2.00000000",
        "200.50000000",  # 1 @ 100.0 + 1 @ 100.5
    )
    assert [(f["price"], f["qty"]) for f in body["fills"]] == [
        ("100.00000000", "1.00000000"),
        ("100.50000000", "1.00000000"),
    ]
    assert body["fills"][0]["commissionAsset"] == "TEST"  # a buy pays fees in the base asset


async def test_spot_cancel_answers_cancel_id_and_orig_client_order_id(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    new = {"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "90.0"}
    await call(
        client, venue, "POST", "/api/v3/order", {**new, "quantity": "1", "newClientOrderId": "c1"}
    )
    r = await call(
        client, venue, "DELETE", "/api/v3/order", {"symbol": SYM, "origClientOrderId": "c1"}
    )
    body = r.json()
    assert body["origClientOrderId"] == "c1"
    assert body["clientOrderId"] != "c1"
    assert body["status"] == "CANCELED"
    again = await call(
        client, venue, "DELETE", "/api/v3/order", {"symbol": SYM, "origClientOrderId": "c1"}
    )
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}


async def test_futures_market_order_with_default_ack_reports_new_then_query_shows_fill(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(
        client,
        venue,
        "POST",
        "/fapi/v1/order",
        {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "1", "newClientOrderId": "f1"},
    )
    ack = r.json()
    assert (ack["status"], ack["executedQty"], ack["positionSide"]) == ("NEW", "0.000", "BOTH")
    q = await call(
        client, venue, "GET", "/fapi/v1/order", {"symbol": SYM, "orderId": ack["orderId"]}
    )
    assert (q.json()["status"], q.json()["executedQty"], q.json()["avgPrice"]) == (
        "FILLED",
        "1.000",
        "100",
    )
    trades = await call(client, venue, "GET", "/fapi/v1/userTrades", {"symbol": SYM})
    (t,) = trades.json()
    assert (t["price"], t["qty"], t["maker"], t["side"]) == ("100.0", "1.000", False, "BUY")


async def test_algo_order_lifecycle_answers_binance_algo_fields(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    await call(
        client,
        venue,
        "POST",
        "/fapi/v1/order",
        {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "1"},
    )
    venue.set_mark_price(SYM, D("100"))
    r = await call(
        client,
        venue,
        "POST",
        "/fapi/v1/algoOrder",
        {
            "algoType": "CONDITIONAL",
            "symbol": SYM,
            "side": "SELL",
            "type": "STOP_MARKET",
            "triggerPrice": "95.0",
            "closePosition": "true",
            "workingType": "MARK_PRICE",
            "clientAlgoId": "sl-1",
        },
    )
    algo = r.json()
    assert (algo["algoStatus"], algo["orderType"], algo["closePosition"]) == (
        "NEW",
        "STOP_MARKET",
        True,
    )
    venue.set_mark_price(SYM, D("94"))
    q = await call(client, venue, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "sl-1"})
    assert q.json()["algoStatus"] == "FINISHED"
    assert q.json()["actualOrderId"] != ""
    gone = await call(client, venue, "DELETE", "/fapi/v1/algoOrder", {"algoId": algo["algoId"]})
    assert gone.json()["code"] == -2011


async def test_oco_list_answers_order_reports_stop_leg_first(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    r = await call(
        client,
        venue,
        "POST",
        "/api/v3/orderList/oco",
        {
            "symbol": SYM,
            "side": "SELL",
            "quantity": "1",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": "105.0",
            "belowType": "STOP_LOSS",
            "belowStopPrice": "95.0",
            "listClientOrderId": "oco-1",
        },
    )
    body = r.json()
    assert (body["contingencyType"], body["listStatusType"], body["listOrderStatus"]) == (
        "OCO",
        "EXEC_STARTED",
        "EXECUTING",
    )
    assert [o["type"] for o in body["orderReports"]] == ["STOP_LOSS", "LIMIT_MAKER"]
    got = await call(
        client, venue, "GET", "/api/v3/orderList", {"orderListId": body["orderListId"]}
    )
    assert "orderReports" not in got.json()
    cancel = await call(
        client, venue, "DELETE", "/api/v3/orderList", {"symbol": SYM, "listClientOrderId": "oco-1"}
    )
    assert cancel.json()["listStatusType"] == "ALL_DONE"
    assert {o["status"] for o in cancel.json()["orderReports"]} == {"CANCELED"}


async def test_exchange_info_answers_filters_from_the_instrument(
    client: httpx.AsyncClient,
) -> None:
    spot = (await client.get("/api/v3/exchangeInfo")).json()["symbols"][0]
    filters = {f["filterType"]: f for f in spot["filters"]}
    assert (filters["PRICE_FILTER"]["tickSize"], filters["LOT_SIZE"]["stepSize"]) == (
        "0.10000000",
        "0.00100000",
    )
    fut = (await client.get("/fapi/v1/exchangeInfo")).json()["symbols"][0]
    assert (fut["contractType"], fut["pricePrecision"], fut["quantityPrecision"]) == (
        "PERPETUAL",
        1,
        3,
    )
    assert {f["filterType"]: f for f in fut["filters"]}["MIN_NOTIONAL"]["notional"] == "5"


async def test_position_risk_v2_and_v3_answer_their_own_shapes(
    client: httpx.AsyncClient, venue: Venue
) -> None:
    assert (await call(client, venue, "GET", "/fapi/v3/positionRisk", {})).json() == []
    (flat,) = (await call(client, venue, "GET", "/fapi/v2/positionRisk", {})).json()
    assert (flat["leverage"], flat["marginType"], flat["positionAmt"]) == ("20", "cross", "0.000")
    await call(
        client,
        venue,
        "POST",
        "/fapi/v1/order",
        {"symbol": SYM, "side": "SELL", "type": "MARKET", "quantity": "1"},
    )
    (pos,) = (await call(client, venue, "GET", "/fapi/v3/positionRisk", {})).json()
    assert (pos["positionAmt"], pos["entryPrice"]) == ("-1.000", "99.5")
    assert "leverage" not in pos


def test_python_m_venue_facade_with_port_serves_the_wall_clock_venue() -> None:
    import subprocess
    import sys
    import time

    from svckit.embedded_redis import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "venue.facade", "--port", str(port), "--no-replay"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v3/time", timeout=0.5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "the runner exited"
                assert time.monotonic() < deadline, "the runner did not come up"
                time.sleep(0.05)
        assert abs(r.json()["serverTime"] - time.time() * 1000) < 5_000
        depth = httpx.get(f"http://127.0.0.1:{port}/fapi/v1/depth?symbol=BTCUSDT&limit=5")
        assert len(depth.json()["bids"]) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=10)
