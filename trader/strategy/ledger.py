"""A strategy's own positions and PnL, from its fills alone, in exact decimals.

Several strategies (and manual trades) may hold the same instrument, so the
broker's position says nothing about one strategy's. The ledger keeps, per
instrument, a :class:`~trader.domain.figures.Lot` (the signed quantity, the
open quantity's cost, the realized PnL and the commissions): the figures are
those of docs/ARCHITECTURE.md's "Money figures", the same as the broker's
portfolio shows. Each fill counts once: it is keyed by its execution id, so a
fill seen on the bus and again in a resync is not doubled (a commission
reported after its fill is taken then, once). Unrealized PnL is marked at the
last price the service saw for the instrument; the marks outlive
:meth:`Ledger.reset`, so a resync does not lose them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from trader.domain import Contract, Fill
from trader.domain.figures import Figures, Lot, price_decimals

__all__ = ["Ledger", "quote_mark"]

_ZERO = Decimal(0)


@dataclass(slots=True)
class Ledger:
    """Positions and PnL of one strategy, per instrument key."""

    holdings: dict[str, Lot] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)  # instrument key -> last price seen
    ticks: dict[str, Decimal] = field(default_factory=dict)  # instrument key -> minimum tick, where known
    contracts: dict[str, Contract] = field(default_factory=dict)  # instrument key -> the contract its fills name
    # exec id -> None once its commission is counted, else how much of the fill closed (to split it when it comes)
    commissioned: dict[str, Decimal | None] = field(default_factory=dict)
    fills: int = 0

    def apply(self, key: str, fill: Fill) -> bool:
        """Count ``fill`` under instrument ``key``; return False if its execution id was already counted."""
        if fill.exec_id in self.commissioned:
            closing = self.commissioned[fill.exec_id]
            if closing is not None and fill.commission is not None:  # IB reports commissions after the execution
                self.holdings[key].add_commission(fill.commission, fill.signed_quantity, closing)
                self.commissioned[fill.exec_id] = None
            return False
        lot = self.holdings.setdefault(key, Lot())
        self.contracts[key] = fill.contract
        if fill.contract.multiplier:
            lot.multiplier = fill.contract.multiplier
        closing = lot.apply(fill.signed_quantity, fill.price, fill.commission or _ZERO)
        self.commissioned[fill.exec_id] = None if fill.commission is not None else closing
        self.fills += 1
        return True

    def position(self, key: str) -> Decimal:
        """Return the strategy's signed quantity of ``key`` (0 if it never traded it)."""
        lot = self.holdings.get(key)
        return lot.quantity if lot else _ZERO

    def mark(self, key: str, price: Decimal) -> None:
        """Mark ``key`` at ``price`` (the unrealized PnL is counted at the last mark)."""
        self.marks[key] = price

    def unmarked(self) -> list[str]:
        """Return the instruments held without a mark (their unrealized PnL is not known)."""
        return [key for key, lot in self.holdings.items() if lot.quantity != 0 and key not in self.marks]

    def reset(self) -> None:
        """Forget the fills (a resync counts them again); the marks and ticks stay."""
        self.holdings.clear()
        self.commissioned.clear()
        self.fills = 0

    def figures(self, key: str) -> Figures:
        """Return the figures of instrument ``key``."""
        return self.holdings.get(key, Lot()).figures(self.marks.get(key))

    def summary(self) -> dict[str, Any]:
        """Return positions, each holding's figures and the totals (net = realized + unrealized).

        ``unrealized_pnl`` and ``net_pnl`` are None while an open position has no mark.
        """
        figures = {key: self.figures(key) for key in sorted(self.holdings)}
        realized = sum((f.realized or _ZERO for f in figures.values()), _ZERO)
        commission = sum((lot.commission for lot in self.holdings.values()), _ZERO)
        unrealized: Decimal | None = _ZERO
        for f in figures.values():
            unrealized = None if unrealized is None or f.unrealized is None else unrealized + f.unrealized
        return {
            "positions": {k: f.quantity for k, f in figures.items() if f.quantity != 0},
            "holdings": {k: {**f.to_dict(), "price_decimals": price_decimals(self.contracts.get(k), self.ticks.get(k))}
                         for k, f in figures.items()},
            "realized_pnl": realized,
            "unrealized_pnl": unrealized,
            "commission": commission,
            "net_pnl": None if unrealized is None else realized + unrealized,
            "fills": self.fills,
        }


def _exact_price(value: object) -> Decimal | None:
    # A float is read from its shortest text (0.1 is 0.1, not 0.1000000000000000055...).
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except ArithmeticError:
        return None
    return price if price.is_finite() and price > 0 else None


def quote_mark(quote: dict[str, Any]) -> Decimal | None:
    """Return the price a quote (a snapshot's tick) marks a position at: its last trade, else its mid; None: neither.

    The mid is computed in Decimal from the prices' text: bid 0.1 and ask 0.2 mark at 0.15 exactly.
    """
    last = _exact_price(quote.get("last"))
    if last is not None:
        return last
    bid, ask = _exact_price(quote.get("bid")), _exact_price(quote.get("ask"))
    if bid is not None and ask is not None and bid <= ask:
        return (bid + ask) / 2
    return None
