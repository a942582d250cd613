"""How S4 sets ccxt up: the client config (:func:`client_config`), Binance markets from our
instrument_registry (:func:`binance_market_info`: ``exchangeInfo`` entries fed through ccxt's
own ``parse_market``, so start-up does not depend on venue discovery), MEXC's market lists
(:func:`load_mexc_markets`: only the types the registry trades), and Binance's request weight
(per-minute limits, the ``X-MBX-USED-WEIGHT-1M`` header)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tradekit.enums import Market
from tradekit.instrument import Instrument

SPOT, FUT = Market.SPOT, Market.FUT
BINANCE_WEIGHT_LIMITS = {SPOT: 6_000, FUT: 2_400}  # REQUEST_WEIGHT per minute (exchangeInfo)
# Binance's advertised order types (ccxt validates createOrder types against market.info).
SPOT_ORDER_TYPES = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]
FUT_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


def plain(value: Decimal) -> str:
    """A Decimal as a plain string for ccxt (never exponent notation)."""
    return f"{value:f}"


def binance_market_info(inst: Instrument, market: Market) -> dict[str, Any]:
    """The Binance ``exchangeInfo`` symbol entry of an instrument (what ccxt's
    ``parse_market`` reads: asset ids, contract fields, PRICE_FILTER / LOT_SIZE / notional
    filters and the advertised order types)."""
    tick, step = plain(inst.tickSize), plain(inst.stepSize)
    min_qty = plain(max(inst.minQty, inst.stepSize))
    default_max = "9000000" if market is SPOT else "1000000"  # Binance's nominal caps
    max_qty = plain(inst.maxQty) if inst.maxQty is not None else default_max
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
                "minNotional": plain(inst.minNotional),
                "maxNotional": "9000000",
            }
        )
        return {
            **base,
            "orderTypes": SPOT_ORDER_TYPES,
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
    filters.append({"filterType": "MIN_NOTIONAL", "notional": plain(inst.minNotional)})
    return {
        **base,
        "pair": inst.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "marginAsset": inst.quote_asset,
        "orderTypes": FUT_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        "filters": filters,
    }


def used_weight_1m(headers: Mapping[Any, Any] | None) -> int | None:
    """``X-MBX-USED-WEIGHT-1M`` of an answer's headers (names matched case-insensitively)."""
    if not headers:
        return None
    for name, value in headers.items():
        if str(name).lower() == "x-mbx-used-weight-1m":
            try:
                return int(str(value).split(",")[-1].strip())
            except ValueError:
                return None
    return None


def client_config(
    *,
    api_key: str,
    api_secret: str,
    timeout_ms: int,
    enable_rate_limit: bool,
    recv_window_ms: int,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ccxt constructor's config (`options` overrides ours); the runbook's venue shell
    builds its client with it too."""
    return {
        "apiKey": api_key,
        "secret": api_secret,
        "enableRateLimit": enable_rate_limit,
        "timeout": timeout_ms,
        # ccxt's limiter, when enabled: Binance limits weight per minute, and the default
        # leaky bucket would space every futures order 200 ms apart.
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


async def load_mexc_markets(client: Any, instruments: Sequence[Instrument]) -> None:
    """MEXC's market lists, only those the registry trades: spot (api.mexc.com) and/or swap
    (contract.mexc.com). ccxt's own load_markets() always fetches both plus the currency list
    (/capital/config/getall: networks and withdrawal data the router never uses), so a
    spot-only registry would depend on the futures host and on a wallet-permission call."""
    wanted = {m for inst in instruments for m in inst.markets}
    if not wanted:
        await client.load_markets()
        return
    markets: list[Any] = []
    if SPOT in wanted:
        markets += await client.fetch_spot_markets()
    if FUT in wanted:
        markets += await client.fetch_swap_markets()
    client.set_markets(markets)
