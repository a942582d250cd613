"""Spot balances and the USDⓈ-M futures account (wallet, one-way positions, margin settings).

Both implement the small :class:`Account` protocol the matching engine talks to:

* ``reserve`` before an order may work (spot locks the asset it may spend; futures holds the
  initial margin of the part of the order that would increase the position) — or raise the
  Binance rejection;
* ``on_fill`` for every execution (balances move, positions and realised PnL update);
* ``release`` when an order ends with something still reserved.

Simplifications, on purpose: no liquidation engine, isolated and cross positions use the same
available-balance formula (isolated only changes how the margin is labelled), no multi-assets
mode, one-way position mode only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tradekit.enums import Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO
from venue import errors
from venue.models import (
    Balance,
    FuturesAccountInfo,
    MarginType,
    PositionInfo,
    Trade,
    VenueOrder,
)


class Account(Protocol):
    def fee_asset(self, inst: Instrument, side: Side) -> str: ...

    def reserve(self, order: VenueOrder, inst: Instrument, est_notional: Decimal) -> None: ...

    def fill_cap(self, order: VenueOrder) -> Decimal | None: ...

    def on_fill(self, order: VenueOrder, inst: Instrument, trade: Trade) -> None: ...

    def release(self, order: VenueOrder, inst: Instrument) -> None: ...


class SpotAccount:
    """free/locked per asset. A resting BUY locks quote (qty × limit price), a SELL locks base.

    Fees are charged in the asset received (BUY: base, SELL: quote), as on Binance without BNB
    fee discounts.
    """

    def __init__(self, balances: dict[str, Decimal] | None = None) -> None:
        self._free: dict[str, Decimal] = dict(balances or {})
        self._locked: dict[str, Decimal] = {}

    # ---- queries ------------------------------------------------------------------------------
    def balance(self, asset: str) -> Balance:
        return Balance(asset, self._free.get(asset, ZERO), self._locked.get(asset, ZERO))

    def balances(self) -> dict[str, Balance]:
        assets = sorted(set(self._free) | set(self._locked))
        return {a: self.balance(a) for a in assets}

    # ---- engine protocol ------------------------------------------------------------------
    def fee_asset(self, inst: Instrument, side: Side) -> str:
        return inst.base_asset if side is Side.BUY else inst.quote_asset

    def _lock(self, asset: str, amount: Decimal) -> None:
        if self._free.get(asset, ZERO) < amount:
            raise errors.VenueError(errors.NEW_ORDER_REJECTED, errors.MSG_INSUFFICIENT_BALANCE)
        self._free[asset] = self._free.get(asset, ZERO) - amount
        self._locked[asset] = self._locked.get(asset, ZERO) + amount

    def reserve(self, order: VenueOrder, inst: Instrument, est_notional: Decimal) -> None:
        """Lock what the order may spend: quote for a BUY (`est_notional`), base for a SELL."""
        if order.side is Side.BUY:
            self._lock(inst.quote_asset, est_notional)
            order.reserved = est_notional
        else:
            self._lock(inst.base_asset, order.remaining)
            order.reserved = order.remaining

    def fill_cap(self, order: VenueOrder) -> Decimal | None:
        return None

    def on_fill(self, order: VenueOrder, inst: Instrument, trade: Trade) -> None:
        base, quote = inst.base_asset, inst.quote_asset
        if order.side is Side.BUY:
            # Unlock what this quantity was locked at (its limit price, or what it cost for a
            # market order); the difference to the actual cost is price improvement, refunded.
            locked_for = trade.qty * order.price if order.price is not None else trade.quote_qty
            locked_for = min(locked_for, order.reserved)
            order.reserved -= locked_for
            self._locked[quote] = self._locked.get(quote, ZERO) - locked_for
            self._free[quote] = self._free.get(quote, ZERO) + locked_for - trade.quote_qty
            self._free[base] = self._free.get(base, ZERO) + trade.qty - trade.fee
        else:
            used = min(trade.qty, order.reserved)
            order.reserved -= used
            self._locked[base] = self._locked.get(base, ZERO) - used
            self._free[quote] = self._free.get(quote, ZERO) + trade.quote_qty - trade.fee

    def release(self, order: VenueOrder, inst: Instrument) -> None:
        if order.reserved > 0:
            asset = inst.quote_asset if order.side is Side.BUY else inst.base_asset
            self._locked[asset] = self._locked.get(asset, ZERO) - order.reserved
            self._free[asset] = self._free.get(asset, ZERO) + order.reserved
            order.reserved = ZERO


@dataclass(slots=True)
class _Position:
    qty: Decimal = ZERO  # signed
    entry_price: Decimal = ZERO


class FuturesAccount:
    """USDT wallet, one-way positions, per-symbol leverage and margin type, funding."""

    DEFAULT_LEVERAGE = 20
    MAX_LEVERAGE = 125

    def __init__(
        self, wallet_usdt: Decimal, mark_price: Callable[[str], Decimal], asset: str = "USDT"
    ) -> None:
        self.asset = asset
        self.wallet = wallet_usdt
        self._mark = mark_price
        self._positions: dict[str, _Position] = {}
        self._leverage: dict[str, int] = {}
        self._margin_type: dict[str, MarginType] = {}
        self._open_margin: dict[int, VenueOrder] = {}

    # ---- settings -----------------------------------------------------------------------------
    def leverage(self, symbol: str) -> int:
        return self._leverage.get(symbol, self.DEFAULT_LEVERAGE)

    def margin_type(self, symbol: str) -> MarginType:
        return self._margin_type.get(symbol, MarginType.CROSSED)

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Setting the current value again succeeds, as on Binance."""
        if not 1 <= leverage <= self.MAX_LEVERAGE:
            raise errors.VenueError(errors.INVALID_LEVERAGE, f"Leverage {leverage} is not valid")
        self._leverage[symbol] = leverage
        return leverage

    def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        if self.margin_type(symbol) is margin_type:
            raise errors.VenueError(
                errors.NO_NEED_TO_CHANGE_MARGIN_TYPE, errors.MSG_NO_NEED_MARGIN_TYPE
            )
        if self.position_qty(symbol) != 0 or any(
            o.symbol == symbol for o in self._open_margin.values()
        ):
            raise errors.VenueError(
                errors.MARGIN_TYPE_WITH_POSITION,
                "Margin type cannot be changed if there exists position.",
            )
        self._margin_type[symbol] = margin_type

    # ---- positions ----------------------------------------------------------------------------
    def position_qty(self, symbol: str) -> Decimal:
        pos = self._positions.get(symbol)
        return pos.qty if pos else ZERO

    def reducible(self, symbol: str, side: Side) -> Decimal:
        """How much an order on `side` can reduce `symbol`'s position (0: nothing to reduce)."""
        pos = self.position_qty(symbol)
        return ZERO if pos == 0 or (pos > 0) == (side is Side.BUY) else abs(pos)

    def position(self, symbol: str) -> PositionInfo:
        pos = self._positions.get(symbol, _Position())
        mark = self._mark(symbol)
        lev = self.leverage(symbol)
        return PositionInfo(
            symbol=symbol,
            qty=pos.qty,
            entry_price=pos.entry_price,
            mark_price=mark,
            unrealized_pnl=(mark - pos.entry_price) * pos.qty if pos.qty else ZERO,
            leverage=lev,
            margin_type=self.margin_type(symbol),
            initial_margin=abs(pos.qty) * mark / lev,
        )

    def positions(self) -> list[PositionInfo]:
        return [self.position(s) for s in sorted(self._positions) if self._positions[s].qty != 0]

    def info(self) -> FuturesAccountInfo:
        positions = self.positions()
        upnl = sum((p.unrealized_pnl for p in positions), ZERO)
        pim = sum((p.initial_margin for p in positions), ZERO)
        oim = sum((o.reserved for o in self._open_margin.values()), ZERO)
        return FuturesAccountInfo(
            wallet_balance=self.wallet,
            unrealized_pnl=upnl,
            available_balance=self.wallet + upnl - pim - oim,
            position_initial_margin=pim,
            open_order_initial_margin=oim,
        )

    # ---- engine protocol ------------------------------------------------------------------
    def fee_asset(self, inst: Instrument, side: Side) -> str:
        return self.asset

    def reserve(self, order: VenueOrder, inst: Instrument, est_notional: Decimal) -> None:
        """Hold notional/leverage for the part of the order that opens or increases a position,
        and reject with -2019 when the available balance cannot cover it."""
        if order.reduce_only:
            return
        inc = max(ZERO, order.remaining - self.reducible(order.symbol, order.side))
        if inc <= 0 or order.remaining <= 0:
            return
        margin = est_notional * inc / order.remaining / self.leverage(order.symbol)
        if margin > self.info().available_balance:
            raise errors.VenueError(errors.MARGIN_INSUFFICIENT, errors.MSG_MARGIN_INSUFFICIENT)
        order.reserved = margin
        self._open_margin[order.order_id] = order

    def fill_cap(self, order: VenueOrder) -> Decimal | None:
        """A reduce-only order never trades more than the position it reduces."""
        return self.reducible(order.symbol, order.side) if order.reduce_only else None

    def on_fill(self, order: VenueOrder, inst: Instrument, trade: Trade) -> None:
        if order.reserved > 0:
            before = order.remaining + trade.qty  # the engine has already added the fill
            order.reserved -= order.reserved * trade.qty / before if before > 0 else ZERO
        trade.realized_pnl = self._apply(order.symbol, order.side, trade.qty, trade.price)
        self.wallet += trade.realized_pnl - trade.fee

    def _apply(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Move the one-way position; returns the realised PnL of the closed part."""
        pos = self._positions.setdefault(symbol, _Position())
        delta = qty if side is Side.BUY else -qty
        if pos.qty == 0 or (pos.qty > 0) == (delta > 0):
            total = abs(pos.qty) + qty
            pos.entry_price = (abs(pos.qty) * pos.entry_price + qty * price) / total
            pos.qty += delta
            return ZERO
        closed = min(qty, abs(pos.qty))
        direction = 1 if pos.qty > 0 else -1
        realized = (price - pos.entry_price) * closed * direction
        new_qty = pos.qty + delta
        if new_qty == 0:
            pos.entry_price = ZERO
        elif (new_qty > 0) != (pos.qty > 0):
            pos.entry_price = price  # flipped: the remainder opened at this price
        pos.qty = new_qty
        return realized

    def release(self, order: VenueOrder, inst: Instrument) -> None:
        order.reserved = ZERO
        self._open_margin.pop(order.order_id, None)

    # ---- funding ------------------------------------------------------------------------------
    def settle_funding(self, symbol: str, rate: Decimal) -> Decimal:
        """Pay/receive funding on `symbol`: longs pay shorts when the rate is positive. Returns
        the wallet change (negative = paid)."""
        qty = self.position_qty(symbol)
        if qty == 0:
            return ZERO
        payment = -qty * self._mark(symbol) * rate
        self.wallet += payment
        return payment
