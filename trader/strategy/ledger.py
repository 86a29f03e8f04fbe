"""A strategy's own positions and PnL, from its fills alone, in exact decimals.

Several strategies (and manual trades) may hold the same instrument, so the
broker's position says nothing about one strategy's. The ledger keeps, per
instrument, the signed quantity, the average cost of the open quantity, the
realized PnL (closing quantity times the price difference, times the
contract's multiplier) and the commissions paid. Each fill counts once: it is
keyed by its execution id, so a fill seen on the bus and again in a resync is
not doubled. Unrealized PnL is marked at the last price the service saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from trader.domain import Action, Fill

__all__ = ["Holding", "Ledger"]

_ZERO = Decimal(0)
_ONE = Decimal(1)


@dataclass(slots=True)
class Holding:
    """One instrument's position within a strategy."""

    quantity: Decimal = _ZERO
    avg_cost: Decimal = _ZERO
    realized: Decimal = _ZERO
    commission: Decimal = _ZERO
    multiplier: Decimal = _ONE
    last_price: Decimal | None = None

    @property
    def unrealized(self) -> Decimal:
        if self.quantity == 0 or self.last_price is None:
            return _ZERO
        return (self.last_price - self.avg_cost) * self.quantity * self.multiplier

    def apply(self, signed_qty: Decimal, price: Decimal) -> None:
        """Add a fill of ``signed_qty`` (positive bought) at ``price``."""
        qty = self.quantity
        if qty == 0 or (qty > 0) == (signed_qty > 0):  # opening or adding: the average moves
            total = qty + signed_qty
            self.avg_cost = (self.avg_cost * abs(qty) + price * abs(signed_qty)) / abs(total)
            self.quantity = total
            return
        closing = min(abs(signed_qty), abs(qty))
        direction = _ONE if qty > 0 else -_ONE
        self.realized += (price - self.avg_cost) * closing * direction * self.multiplier
        remaining = abs(signed_qty) - closing
        if remaining == 0:  # reduced or closed
            self.quantity = qty + signed_qty
            if self.quantity == 0:
                self.avg_cost = _ZERO
        else:  # reversed: the rest opens at the fill price
            self.quantity = remaining * (_ONE if signed_qty > 0 else -_ONE)
            self.avg_cost = price


@dataclass(slots=True)
class Ledger:
    """Positions and PnL of one strategy, per instrument key."""

    holdings: dict[str, Holding] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    fills: int = 0

    def apply(self, key: str, fill: Fill) -> bool:
        """Count ``fill`` under instrument ``key``; return False if its execution id was already counted."""
        if fill.exec_id in self.seen:
            return False
        self.seen.add(fill.exec_id)
        holding = self.holdings.setdefault(key, Holding())
        if fill.contract.multiplier:
            holding.multiplier = fill.contract.multiplier
        signed = fill.quantity if fill.action is Action.BUY else -fill.quantity
        holding.apply(signed, fill.price)
        holding.commission += fill.commission or _ZERO
        self.fills += 1
        return True

    def position(self, key: str) -> Decimal:
        holding = self.holdings.get(key)
        return holding.quantity if holding else _ZERO

    def mark(self, key: str, price: Decimal) -> None:
        holding = self.holdings.get(key)
        if holding is not None:
            holding.last_price = price

    def reset(self) -> None:
        self.holdings.clear()
        self.seen.clear()
        self.fills = 0

    def summary(self) -> dict[str, Any]:
        """Return positions by instrument and the PnL totals (net of commissions)."""
        realized = sum((h.realized for h in self.holdings.values()), _ZERO)
        unrealized = sum((h.unrealized for h in self.holdings.values()), _ZERO)
        commission = sum((h.commission for h in self.holdings.values()), _ZERO)
        return {
            "positions": {k: h.quantity for k, h in sorted(self.holdings.items()) if h.quantity != 0},
            "realized_pnl": realized,
            "unrealized_pnl": unrealized,
            "commission": commission,
            "pnl": realized + unrealized - commission,
            "fills": self.fills,
        }
