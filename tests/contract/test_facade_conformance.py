"""The Binance facade answers like Binance: checked against real recorded Binance answers.

``data/ccxt-recorded/binance.json`` (beside this module) holds real Binance spot and USDⓈ-M
answers recorded by the ccxt project (the raw ``httpResponse`` and ccxt's ``parsedResponse`` per
unified method).
For every recorded method the facade serves, a test

1. makes the same ccxt call against the facade (real HTTP, ``ccxt.binance`` /
   ``ccxt.binanceusdm``) after putting the venue in the recorded situation (a filled MARKET
   order, a resting post-only order, an open position, ...), capturing the raw answer;
2. compares that raw answer with the recorded one: the same field names, the same JSON types
   (integer ids and millisecond timestamps, decimal *strings*, booleans, nested lists), the same
   vocabulary where the situation is the same (status, type, side, timeInForce, ...) and,
   where Binance renders a decimal string with 8 decimals, the same;
3. replays the recorded raw answer through the same ccxt method (the client's ``fetch`` returns
   the recording instead of going to the network) and checks that ccxt parses both answers
   alike: the same unified fields set (not ``None``) with the same types — and that this
   re-parse agrees with ccxt's own ``parsedResponse`` in the file.

What still differs is listed per case (``raw_diffs`` / ``parse_diffs``) with the reason and in
docs/venue.md §4; a difference that appears or disappears fails the test, so the list stays
true.

The recording stores JSON integers of its older cases as strings (the same ``orderId`` field is
the number ``4087922044`` in the 2025 ``createOrders`` case and the string ``"664082074"`` in the
2024 ``fetchOpenOrder`` one; Binance documents numbers). A recorded integer-looking string in a
field Binance documents as a number (``INT_FIELDS``, ``MS_FIELDS``) is therefore read as that
number; everywhere else a string stays a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import httpx
import pytest
import pytest_asyncio

from svckit.ccxt_hosts import rewrite_urls as _rewrite_urls
from tests.contract.facade_harness import API_KEY, API_SECRET, SwappableApp, facade_venue, plug
from tests.facade_server import FacadeServer
from venue.venue import Venue

RECORDED_PATH = Path(__file__).resolve().parent / "data" / "ccxt-recorded" / "binance.json"

SPOT_SYMBOL, FUT_SYMBOL = "BTC/USDT", "BTC/USDT:USDT"
# Binance numbers (documented as JSON numbers) that the older recordings hold as strings.
INT_FIELDS = frozenset(
    {
        "orderId",
        "orderListId",
        "id",
        "tradeId",
        "lastUpdateId",
        "makerCommission",
        "takerCommission",
        "buyerCommission",
        "sellerCommission",
        "uid",
        "adl",
        "feeTier",
        "tradeGroupId",
        "firstId",
        "lastId",
        "count",
        "goodTillDate",
    }
)
MS_FIELDS = frozenset(
    {"transactTime", "time", "updateTime", "workingTime", "E", "T", "openTime", "closeTime"}
)
_NUM = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_MS_MIN, _MS_MAX = 10**12, 10**13


def _recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED_PATH.read_text())
    return data


RECORDED = _recorded()


def recorded_case(method: str, description: str) -> dict[str, Any]:
    for case in RECORDED["methods"][method]:
        if case["description"] == description:
            return dict(case)
    raise KeyError((method, description))


# ---- raw answers: kinds and differences --------------------------------------------------------
def raw_kind(
    key: str | None, value: Any, *, recorded: bool, int_fields: frozenset[str] = INT_FIELDS
) -> str:
    """The JSON type of one scalar as Binance means it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if key in MS_FIELDS:
            return "ms" if value in (0, -1) or _MS_MIN <= value < _MS_MAX else f"int({value})"
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str) and _NUM.match(value):
        if recorded and "." not in value and key in int_fields | MS_FIELDS:
            return raw_kind(key, int(value), recorded=False)
        return "num"
    return "str"


def _decimals(value: Any) -> int | None:
    if isinstance(value, str) and _NUM.match(value):
        return len(value.split(".")[1]) if "." in value else 0
    return None


def raw_diffs(
    rec: Any,
    fac: Any,
    path: str = "",
    key: str | None = None,
    int_fields: frozenset[str] = INT_FIELDS,
) -> set[str]:
    """Differences of field names, types and the 8-decimal rendering between two answers."""
    where = path.rstrip(".") or "$"
    if isinstance(rec, dict) and isinstance(fac, dict):
        out = {f"missing {path}{k}" for k in rec.keys() - fac.keys()}
        out |= {f"extra {path}{k}" for k in fac.keys() - rec.keys()}
        for k in rec.keys() & fac.keys():
            out |= raw_diffs(rec[k], fac[k], f"{path}{k}.", k, int_fields)
        return out
    if isinstance(rec, list) and isinstance(fac, list):
        if not rec or not fac:  # nothing to compare an element with
            return set()
        return raw_diffs(rec[0], fac[0], f"{path}0.", key, int_fields)
    if isinstance(rec, (dict, list)) or isinstance(fac, (dict, list)):
        return {f"type {where}: {type(rec).__name__} != {type(fac).__name__}"}
    rk = raw_kind(key, rec, recorded=True, int_fields=int_fields)
    fk = raw_kind(key, fac, recorded=False, int_fields=int_fields)
    if rk != fk:
        return {f"type {where}: {rk} != {fk}"}
    if _decimals(rec) == 8 and _decimals(fac) != 8:
        return {f"format {where}: 8 decimals"}
    return set()


def values(answer: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of an answer (of its first row), integer-looking strings of Binance's
    number fields read as numbers."""
    row = answer[0] if isinstance(answer, list) else answer
    out = {n: row.get(n) for n in names}
    for n, v in out.items():
        if n in INT_FIELDS and isinstance(v, str) and v.lstrip("-").isdigit():
            out[n] = int(v)
    return out


# ---- parsed (unified) structures ----------------------------------------------------------------
def unified_kind(value: Any) -> Any:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return [unified_kind(value[0])] if value else []
    if isinstance(value, dict):
        return {k: unified_kind(v) for k, v in value.items() if k != "info"}
    return type(value).__name__


def unified_diffs(rec: Any, fac: Any, path: str = "") -> set[str]:
    where = path.rstrip(".") or "$"
    if isinstance(rec, dict) and isinstance(fac, dict):
        out = {f"missing {path}{k}" for k in rec.keys() - fac.keys()}
        out |= {f"extra {path}{k}" for k in fac.keys() - rec.keys()}
        for k in rec.keys() & fac.keys():
            out |= unified_diffs(rec[k], fac[k], f"{path}{k}.")
        return out
    if isinstance(rec, list) and isinstance(fac, list):
        if not rec or not fac:
            return set() if rec == fac else {f"empty {where}"}
        return unified_diffs(rec[0], fac[0], f"{path}0.")
    return set() if rec == fac else {f"type {where}: {rec} != {fac}"}


# Unified vocabulary ccxt derives from the raw words: equal when the situation is the same.
UNIFIED_VOCAB = (
    "status",
    "type",
    "side",
    "timeInForce",
    "postOnly",
    "reduceOnly",
    "takerOrMaker",
    "marginMode",
    "hedged",
)


def unified_values(u: Any) -> dict[str, Any]:
    row = u[0] if isinstance(u, list) and u else u
    return {k: row[k] for k in UNIFIED_VOCAB if isinstance(row, dict) and k in row}


_BALANCE_KEYS = ("timestamp", "datetime", "free", "used", "total")


def balance_view(b: dict[str, Any]) -> dict[str, Any]:
    """A unified balance with the currency codes folded (the accounts hold other coins)."""
    codes = [k for k in b if k not in (*_BALANCE_KEYS, "info")]
    row = b[codes[0]]
    return {
        "timestamp": b["timestamp"],
        "datetime": b["datetime"],
        "<code>": row,
        "free": row["free"],
        "used": row["used"],
        "total": row["total"],
    }


# ---- ccxt clients -------------------------------------------------------------------------
def ccxt_client(name: str, base_url: str) -> Any:
    """A ccxt client pointed at the facade that records every (method, path, raw answer)."""
    types = ["spot"] if name == "binance" else ["linear"]
    client = getattr(ccxt_async, name)(
        {
            "apiKey": API_KEY,
            "secret": API_SECRET,
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": types},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": True,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
            },
        }
    )
    client.urls["api"] = _rewrite_urls(client.urls["api"], base_url)
    client.timeout_on_exit = 0
    calls: list[tuple[str, str, Any]] = []
    network_fetch = client.fetch

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        answer = await network_fetch(url, method, headers, body)
        calls.append((method, url.split("?")[0].removeprefix(base_url), answer))
        return answer

    client.fetch = fetch
    client.recorded_calls = calls
    return client


def replay_client(live: Any) -> Any:
    """The same ccxt class with the live client's markets, answering every request with the
    recorded raw answer in ``client.answer`` (what ccxt's own static response tests do)."""
    client = type(live)({"apiKey": API_KEY, "secret": API_SECRET, "options": dict(live.options)})
    client.set_markets(live.markets)
    client.answer = None
    paths: list[str] = []

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        paths.append(url.split("?")[0])
        return json.loads(json.dumps(client.answer))

    client.fetch = fetch
    client.replayed_paths = paths
    return client


def map_symbols(answer: Any, raw_symbol: str) -> Any:
    """The recorded answer with its instrument (LTCUSDT, SOLUSDT) replaced by the facade's, so
    ccxt resolves the same market on both sides."""
    if isinstance(answer, dict):
        return {
            k: (raw_symbol if k == "symbol" else map_symbols(v, raw_symbol))
            for k, v in answer.items()
        }
    if isinstance(answer, list):
        return [map_symbols(v, raw_symbol) for v in answer]
    return answer


@dataclass
class Clients:
    slot: SwappableApp
    venue: Venue  # the one behind the facade in the current test
    spot: Any
    fut: Any
    replay: dict[str, Any]


@pytest.fixture(scope="module")
def facade() -> Iterator[tuple[FacadeServer, SwappableApp]]:
    slot = SwappableApp()
    with FacadeServer(slot, log_level="critical") as server:
        yield server, slot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(facade: tuple[FacadeServer, SwappableApp]) -> AsyncIterator[Clients]:
    """ccxt clients built once (building and loading markets is the slow part); every test
    plugs a fresh venue behind the facade."""
    server, slot = facade
    venue, _clock = facade_venue(seed=11)
    plug(slot, venue)
    spot, fut = ccxt_client("binance", server.url), ccxt_client("binanceusdm", server.url)
    try:
        await spot.load_markets()
        await fut.load_markets()
        await fut.load_leverage_brackets()
        replay = {"spot": replay_client(spot), "fut": replay_client(fut)}
        yield Clients(slot, venue, spot, fut, replay)
        for client in replay.values():
            await client.close()
    finally:
        await spot.close()
        await fut.close()


@pytest_asyncio.fixture(loop_scope="module")
async def stack(clients: Clients) -> Clients:
    venue, _clock = facade_venue(seed=11)
    plug(clients.slot, venue)
    clients.venue = venue
    # Each venue's clock starts again at START_MS: learn the offset anew.
    await clients.spot.load_time_difference()
    await clients.fut.load_time_difference()
    return clients


# ---- the cases ----------------------------------------------------------------------------
Action = Callable[[Any], Awaitable[Any]]


async def _no_setup(_c: Any) -> None:
    return None


def _whole(answer: Any) -> Any:
    return answer


@dataclass(frozen=True)
class Case:
    """One recorded answer and the facade call that reproduces its situation."""

    method: str
    description: str
    market: str  # "spot" | "fut"
    path: str  # the Binance endpoint ccxt calls for it
    call: Action  # the ccxt call (the same one on the facade and on the replay)
    setup: Action = _no_setup  # puts the venue in the recorded situation
    same_values: tuple[str, ...] = ()  # vocabulary that must be equal
    int_fields: frozenset[str] = frozenset()  # per-endpoint numbers on top of INT_FIELDS
    pick: Callable[[Any], Any] = _whole  # the part of the recorded answer compared
    unified_view: Callable[[Any], Any] = _whole
    raw_diffs: frozenset[str] = frozenset()  # known remaining differences (docs/venue.md §4)
    parse_diffs: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return f"{self.method}[{self.description}]"


async def _spot_market_sell(c: Any) -> Any:
    return await c.create_order(SPOT_SYMBOL, "market", "sell", 0.1)


async def _spot_resting_maker(c: Any) -> Any:
    return await c.create_order(SPOT_SYMBOL, "limit", "buy", 0.2, 50000, {"postOnly": True})


async def _fut_position(c: Any) -> Any:
    return await c.create_order(FUT_SYMBOL, "market", "buy", 0.009)


async def _fut_resting_gtx(c: Any) -> Any:
    return await c.create_order(FUT_SYMBOL, "limit", "buy", 0.2, 50000, {"postOnly": True})


async def _spot_cancelled_limit(c: Any) -> Any:
    order = await c.create_order(SPOT_SYMBOL, "limit", "buy", 0.1, 50000)
    await c.cancel_order(order["id"], SPOT_SYMBOL)
    c.last_created = order
    return order


def _remember(created: Action) -> Action:
    async def setup(c: Any) -> Any:
        order = await created(c)
        c.last_created = order
        return order

    return setup


# The venue has no liquidation engine and no maintenance margin: liquidationPrice and
# maintMargin are "0" (Binance: 8-decimal amounts); ccxt reads the "0" price as unknown.
NO_LIQUIDATION = frozenset(
    {"format 0.liquidationPrice: 8 decimals", "format 0.maintMargin: 8 decimals"}
)
# ccxt derives a cross position's collateral from its liquidation price: without one (Binance
# also answers "0" when the wallet can never lose the position) collateral is 0 and
# marginRatio unknown.
NO_LIQUIDATION_PARSED = frozenset(
    {"type 0.liquidationPrice: number != null", "type 0.marginRatio: number != null"}
)
ORDER_VOCAB = ("status", "type", "side", "timeInForce")
FUT_ORDER_VOCAB = (*ORDER_VOCAB, "positionSide", "workingType", "origType", "priceMatch")

CASES: list[Case] = [
    Case(
        "createOrder",
        "spot +selfTradePrevention +iceberg",
        "spot",
        "/api/v3/order",
        # No icebergAmount: the venue has no iceberg orders (see raw_diffs).
        lambda c: c.create_order(
            SPOT_SYMBOL, "limit", "buy", 0.05, 50000, {"selfTradePrevention": "expire_maker"}
        ),
        same_values=(*ORDER_VOCAB, "selfTradePreventionMode", "orderListId", "fills"),
        # Binance includes icebergQty in a new-order answer only for an iceberg order.
        raw_diffs=frozenset({"missing icebergQty"}),
    ),
    Case(
        "createOrders",
        "create swap orders",
        "fut",
        "/fapi/v1/order",
        # batchOrders is not served; each of its rows is the single new-order answer (ACK).
        lambda c: c.create_order(FUT_SYMBOL, "limit", "sell", 0.2, 110001),
        same_values=(*FUT_ORDER_VOCAB, "reduceOnly", "closePosition"),
        pick=lambda a: a[0],
    ),
    Case(
        "fetchOrder",
        "Fetch spot closed order",
        "spot",
        "/api/v3/order",
        lambda c: c.fetch_order(c.last_created["id"], SPOT_SYMBOL),
        setup=_remember(_spot_market_sell),
        same_values=(*ORDER_VOCAB, "isWorking", "orderListId"),
    ),
    Case(
        "fetchOrders",
        "fetch spot orders",
        "spot",
        "/api/v3/order",
        # allOrders is not served; its rows are GET /api/v3/order's (compared here).
        lambda c: c.fetch_order(c.last_created["id"], SPOT_SYMBOL),
        setup=_spot_cancelled_limit,
        same_values=(*ORDER_VOCAB, "isWorking"),
        pick=lambda a: a[0],
    ),
    Case(
        "fetchOpenOrders",
        "Fetch spot open orders",
        "spot",
        "/api/v3/openOrders",
        lambda c: c.fetch_open_orders(SPOT_SYMBOL, None, 1),
        setup=_spot_resting_maker,
        same_values=(*ORDER_VOCAB, "isWorking", "selfTradePreventionMode"),
    ),
    Case(
        "fetchOpenOrder",
        "swap open order",
        "fut",
        "/fapi/v1/openOrder",
        lambda c: c.fetch_open_order(c.last_created["id"], FUT_SYMBOL),
        setup=_remember(_fut_resting_gtx),
        same_values=(*FUT_ORDER_VOCAB, "reduceOnly", "closePosition"),
    ),
    Case(
        "fetchPositions",
        "Fetch linear positions without symbols",
        "fut",
        "/fapi/v3/positionRisk",
        lambda c: c.fetch_positions(),
        setup=_fut_position,
        same_values=("positionSide", "marginAsset", "positionAmt"),
        raw_diffs=NO_LIQUIDATION,
        parse_diffs=NO_LIQUIDATION_PARSED,
    ),
    Case(
        "fetchPositions",
        "Fetch linear positions with symbols",
        "fut",
        "/fapi/v3/positionRisk",
        lambda c: c.fetch_positions([FUT_SYMBOL]),
        setup=_fut_position,
        same_values=("positionSide", "marginAsset", "positionAmt"),
        raw_diffs=NO_LIQUIDATION,
        parse_diffs=NO_LIQUIDATION_PARSED,
    ),
    Case(
        "fetchPositions",
        "Fetch linear positions using account endnpoint",
        "fut",
        "/fapi/v3/account",
        lambda c: c.fetch_positions([FUT_SYMBOL], {"method": "account"}),
        setup=_fut_position,
        raw_diffs=frozenset({"format positions.0.maintMargin: 8 decimals"}),
    ),
    Case(
        "fetchMyTrades",
        "Spot private trade",
        "spot",
        "/api/v3/myTrades",
        lambda c: c.fetch_my_trades(SPOT_SYMBOL, None, 1),
        setup=_spot_market_sell,
        same_values=("isBuyer", "isMaker", "isBestMatch", "commissionAsset", "orderListId"),
    ),
    Case(
        "fetchMyTrades",
        "Swap private trade",
        "fut",
        "/fapi/v1/userTrades",
        lambda c: c.fetch_my_trades(FUT_SYMBOL, None, 1),
        setup=_fut_position,
        same_values=("side", "buyer", "maker", "positionSide", "commissionAsset", "marginAsset"),
    ),
    Case(
        "fetchBalance",
        "Spot balance",
        "spot",
        "/api/v3/account",
        lambda c: c.fetch_balance(),
        same_values=("canTrade", "accountType", "permissions", "brokered"),
        unified_view=balance_view,
    ),
    Case(
        "fetchBalance",
        "Linear swap balance",
        "fut",
        "/fapi/v2/account",
        # The recording is the v2 account (feeTier, canTrade, ...); ccxt now defaults to v3.
        lambda c: c.fetch_balance({"type": "swap", "useV2": True}),
        same_values=("multiAssetsMargin", "canTrade"),
        # feeBurn (BNB fee discount flag) is not in this Nov 2023 recording; the facade
        # keeps it as false (the venue has no BNB discount), ccxt ignores it.
        raw_diffs=frozenset({"extra feeBurn"}),
        unified_view=balance_view,
    ),
    Case(
        "fetchOrderBook",
        "spot orderbook",
        "spot",
        "/api/v3/depth",
        lambda c: c.fetch_order_book(SPOT_SYMBOL, 2),
    ),
    Case(
        "fetchOrderBook",
        "swap orderbook",
        "fut",
        "/fapi/v1/depth",
        lambda c: c.fetch_order_book(FUT_SYMBOL, 5),
    ),
    Case(
        "fetchTicker",
        "public spot ticker",
        "spot",
        "/api/v3/ticker/24hr",
        lambda c: c.fetch_ticker(SPOT_SYMBOL),
    ),
    Case(
        "fetchMarginMode",
        "linear swap fetch margin mode",
        "fut",
        "/fapi/v1/symbolConfig",
        lambda c: c.fetch_margin_mode(FUT_SYMBOL),
        same_values=("marginType", "isAutoAddMargin"),
        int_fields=frozenset({"leverage"}),
    ),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_facade_answers_like_the_recorded_binance_answer(stack: Clients, case: Case) -> None:
    client = stack.spot if case.market == "spot" else stack.fut
    record = recorded_case(case.method, case.description)
    await case.setup(client)
    start = len(client.recorded_calls)
    unified = await case.call(client)
    calls = [(m, p) for m, p, _ in client.recorded_calls[start:]]
    assert calls[-1][1] == case.path, f"ccxt called {calls} on the facade"
    answer = client.recorded_calls[-1][2]
    expected = case.pick(record["httpResponse"])

    # 1. raw answer: field names, JSON types, 8-decimal rendering
    diffs = raw_diffs(expected, answer, int_fields=INT_FIELDS | case.int_fields)
    assert diffs == case.raw_diffs, "\n".join(
        [
            "unexpected:",
            *sorted(diffs - case.raw_diffs),
            "gone:",
            *sorted(case.raw_diffs - diffs),
            json.dumps(answer),
        ]
    )

    # 2. the same vocabulary where the situation is the same
    assert values(answer, case.same_values) == values(expected, case.same_values)

    # 3. ccxt parses both alike (the recorded answer replayed through the same ccxt call)
    replay = stack.replay[case.market]
    replay.answer = map_symbols(expected, "BTCUSDT")
    replay.last_created = getattr(client, "last_created", None)
    replay.replayed_paths.clear()
    replayed = await case.call(replay)
    assert len(replay.replayed_paths) == 1
    rec_u = unified_kind(case.unified_view(replayed))
    fac_u = unified_kind(case.unified_view(unified))
    assert unified_diffs(rec_u, fac_u) == case.parse_diffs
    assert unified_values(unified) == unified_values(replayed)

    # ... and that re-parse agrees with ccxt's own parse stored in the recording (fields that
    # ccxt added or dropped since the recording aside)
    stored = unified_kind(case.unified_view(case.pick(record["parsedResponse"])))
    assert {d for d in unified_diffs(stored, rec_u) if d.startswith("type")} == set()


# ---- request weight, as Binance reports it -------------------------------------------------------
WEIGHT = "x-mbx-used-weight-1m"


def _used_weight(client: Any) -> int:
    headers = {k.lower(): v for k, v in client.last_response_headers.items()}
    return int(headers[WEIGHT])


@pytest.mark.asyncio(loop_scope="module")
async def test_every_answer_reports_the_used_weight_and_every_request_costs_weight(
    stack: Clients, facade: tuple[FacadeServer, SwappableApp]
) -> None:
    """X-MBX-USED-WEIGHT-1M on every answer (success, Binance error, unknown path), and public
    requests that do not reach the venue's order book (ping, exchangeInfo, leverage brackets)
    still cost weight, as on Binance."""
    server, _ = facade
    seen: list[tuple[str, int, int]] = []
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path, params in [
            ("/api/v3/ping", {}),
            ("/fapi/v1/ping", {}),
            ("/api/v3/exchangeInfo", {}),
            ("/fapi/v1/exchangeInfo", {}),
            ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5}),
            ("/api/v3/depth", {"symbol": "NOPE"}),  # Binance error -1121
            ("/api/v3/order", {"symbol": "BTCUSDT"}),  # signed route, no API key
            ("/api/v3/no-such-endpoint", {}),  # 404
        ]:
            r = await http.get(path, params=params)
            assert WEIGHT in r.headers, (path, r.status_code, dict(r.headers))
            seen.append((path, r.status_code, int(r.headers[WEIGHT])))
    used = [w for _, _, w in seen]
    assert used[:5] == sorted(used[:5]) and len(set(used[:5])) == 5, seen  # each one costs
    assert [s for _, s, _ in seen[5:]] == [400, 401, 404]
    # Through ccxt: the header S4 paces itself by is where ccxt exposes it.
    await stack.fut.fapiPrivateGetLeverageBracket()
    before = _used_weight(stack.fut)
    await stack.fut.fapiPrivateGetLeverageBracket()
    assert _used_weight(stack.fut) > before


@pytest.mark.asyncio(loop_scope="module")
async def test_weight_exhausted_answers_429_with_retry_after_and_the_used_weight(
    stack: Clients,
) -> None:
    venue = stack.venue
    venue.limiter.limit = venue.used_weight() + 1
    await stack.spot.fetch_time()  # the last unit of the minute's budget
    with pytest.raises(ccxt_async.DDoSProtection):  # ccxt: 429 -1003
        await stack.spot.fetch_time()
    headers = {k.lower(): v for k, v in stack.spot.last_response_headers.items()}
    retry_after = int(headers["retry-after"])
    now_s = venue.clock.now_ms() / 1000
    assert 1 <= retry_after <= 60
    assert abs((now_s + retry_after) - (int(now_s) // 60 + 1) * 60) <= 1  # the next minute
    assert int(headers[WEIGHT]) == venue.limiter.limit


@pytest.mark.asyncio(loop_scope="module")
async def test_open_order_query_of_a_finished_order_answers_order_does_not_exist(
    stack: Clients,
) -> None:
    """`GET /fapi/v1/openOrder` serves open orders only, like Binance (-2013)."""
    order = await _fut_resting_gtx(stack.fut)
    assert (await stack.fut.fetch_open_order(order["id"], FUT_SYMBOL))["status"] == "open"
    await stack.fut.cancel_order(order["id"], FUT_SYMBOL)
    with pytest.raises(ccxt_async.OrderNotFound) as caught:
        await stack.fut.fetch_open_order(order["id"], FUT_SYMBOL)
    assert '{"code":-2013,"msg":"Order does not exist."}' in str(caught.value)
