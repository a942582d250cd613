"""FUT margin setup at intake: every entry, bracketed or not, runs on ISOLATED margin at the
leverage it was sized with.

Why every entry and not only bracketed ones: margin type is per symbol at the venue, and the
venue refuses to change it while a position (or open orders) exists. If unbracketed entries
left the symbol in the venue's default CROSSED mode, the position they opened would block the
switch for every later bracketed entry; and a CROSSED position puts the whole wallet behind one
symbol's stop.

Idempotent and cached per symbol + leverage (venue calls only on a change, never per order;
concurrent intents for one symbol wait for one setup): positions are read first and only what
differs is set (Binance's -4046 "no need to change margin type" counts as done). A refusal
because a position or open orders exist in the other margin mode (Binance -4048 / -4047) is a
:class:`MarginModeConflict` naming the symbol and the mode, answered as a definitive refusal
(409), never "venue unavailable"; any other failure propagates (after `VenueOps`' retries).
"""

from __future__ import annotations

import asyncio

from s4_router.adapters.exchange.base import ExchangePort, MarginModeConflict
from s4_router.service_layer.venue_ops import VenueOps

ISOLATED = "ISOLATED"


class MarginSetup:
    def __init__(self, *, exchange: ExchangePort, ops: VenueOps, default_leverage: int) -> None:
        self.exchange = exchange
        self.ops = ops
        self.default_leverage = default_leverage
        self._done: dict[str, int] = {}  # symbol -> leverage set at the venue (ISOLATED)
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, symbol: str, leverage: int | None) -> None:
        """ISOLATED margin and `leverage` (or the default) for `symbol` at the venue."""
        lev = leverage or self.default_leverage
        if self._done.get(symbol) == lev:
            return
        async with self._locks.setdefault(symbol, asyncio.Lock()):
            if self._done.get(symbol) == lev:
                return  # set by the intent we waited for
            positions = await self.ops.call(lambda: self.exchange.fetch_positions([symbol]))
            pos = next((p for p in positions if p.symbol == symbol), None)
            mode = pos.margin_type.upper() if pos is not None else None
            if mode != ISOLATED:
                try:
                    await self.ops.call(lambda: self.exchange.set_margin_type(symbol, ISOLATED))
                except MarginModeConflict as exc:
                    held = "a position" if pos is not None and pos.qty else "open orders"
                    raise MarginModeConflict(
                        f"{symbol}: the venue holds {held} in {mode or 'another'} margin mode "
                        f"and refuses to switch the symbol to {ISOLATED} until they are closed "
                        f"(venue code {exc.code}); entry refused, nothing sent. Close or move "
                        "that exposure first (reduce-only closes still pass).",
                        code=exc.code,
                    ) from exc
            if pos is None or pos.leverage != lev:
                await self.ops.call(lambda: self.exchange.set_leverage(symbol, lev))
            self._done[symbol] = lev
