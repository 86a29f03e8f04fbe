"""Money figures: one definition of a holding's position, average cost, market value and PnL, in exact Decimals.

These are the figures ``trader strategy list``, ``trader portfolio`` and the
journal's portfolio snapshots show (docs/ARCHITECTURE.md, "Money figures"),
with IB's conventions, so that a strategy trading alone shows what the
broker shows:

- ``quantity``: signed (negative is short).
- ``avg_cost``: per unit, *without* the multiplier (comparable to the price),
  *with* the commissions of the fills that opened the position: the price at
  which closing it breaks even before the closing commission.
- ``market_price``: the mark, per unit; ``market_value`` is
  quantity x price x multiplier.
- ``realized``: net of commissions: what closed trades made, less every
  commission of their opening and closing fills.
- ``unrealized``: market value less the open quantity's cost (its opening
  commissions included).
- ``commission``: every commission paid, shown for information: it is
  already inside ``realized`` and ``unrealized``, counted once.
- ``net`` = ``realized`` + ``unrealized``.

:class:`Lot` keeps one holding's running account from its fills. It keeps
the open quantity's *cost* (money, multiplier and commissions included)
rather than an average, so additions and subtractions stay exact: the share
of the cost a partial close releases is rounded to :data:`COST_QUANTUM`, and
the same amount leaves the cost and enters the realized PnL, so
realized + unrealized always equals the cash the fills moved plus the market
value, to the last digit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.domain.contract import Contract
from trader.domain.enums import SecType
from trader.domain.records import Position

__all__ = ["COST_QUANTUM", "MONEY_DECIMALS", "Figures", "Lot", "price_decimals"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
#: The precision of the cost share a partial close releases (money units): far below a cent, and it keeps
#: every sum exact (28 digits hold 10**15 to 10**-12).
COST_QUANTUM = Decimal("1e-12")
MONEY_DECIMALS = 2
#: A price's decimals when the instrument's minimum tick is not known: FX quotes in pips' tenths, others in cents.
_DEFAULT_DECIMALS = {SecType.CASH: 5}


def price_decimals(contract: Contract | None, tick: Decimal | None = None) -> int:
    """Return how many decimals a price of ``contract`` shows: its minimum tick's (ES 0.25: 2), else by kind."""
    if tick is not None and tick > 0:
        return max(0, -int(tick.normalize().as_tuple().exponent))
    if contract is None:
        return 2
    return _DEFAULT_DECIMALS.get(contract.sec_type, 2)


@dataclass(frozen=True, slots=True)
class Figures:
    """One holding's figures; see the module docstring for each definition. ``None``: not known."""

    quantity: Decimal
    avg_cost: Decimal
    market_price: Decimal | None
    market_value: Decimal | None
    realized: Decimal | None
    commission: Decimal | None
    unrealized: Decimal | None
    net: Decimal | None

    @classmethod
    def of(cls, quantity: Decimal, avg_cost: Decimal, multiplier: Decimal, market_price: Decimal | None, *,
           realized: Decimal | None = _ZERO, commission: Decimal | None = None, cost: Decimal | None = None,
           market_value: Decimal | None = None, unrealized: Decimal | None = None) -> Figures:
        """Return the figures, deriving those not given: value, unrealized (from ``cost``, else the average) and net.

        A broker's own market value and unrealized PnL, when it gives them,
        are taken as they are (its average cost is a rounded float).
        """
        if cost is None:
            cost = avg_cost * quantity * multiplier
        if market_value is None and market_price is not None:
            market_value = quantity * market_price * multiplier
        if unrealized is None:
            if quantity == 0:
                unrealized = _ZERO
            elif market_value is not None:
                unrealized = market_value - cost
        net = None if realized is None or unrealized is None else realized + unrealized
        return cls(quantity, avg_cost, market_price, market_value, realized, commission, unrealized, net)

    @classmethod
    def of_position(cls, position: Position) -> Figures:
        """Return a broker position's figures (its average cost is per unit: the adapter made it so).

        A realized PnL the broker leaves unset (IB does, for a position it has not closed from) is 0.
        """
        multiplier = position.contract.multiplier or _ONE
        realized = _ZERO if position.realized_pnl is None else position.realized_pnl
        return cls.of(position.quantity, position.avg_cost, multiplier, position.market_price,
                      realized=realized, market_value=position.market_value,
                      unrealized=position.unrealized_pnl)

    def to_dict(self) -> dict[str, Any]:
        """Return the figures by name (exact Decimals; None where not known)."""
        return {"quantity": self.quantity, "avg_cost": self.avg_cost, "market_price": self.market_price,
                "market_value": self.market_value, "realized_pnl": self.realized, "commission": self.commission,
                "unrealized_pnl": self.unrealized, "net_pnl": self.net}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figures:
        """Return the figures :meth:`to_dict` gave (other keys, such as ``price_decimals``, are ignored)."""
        return cls(data["quantity"], data["avg_cost"], data["market_price"], data["market_value"],
                   data["realized_pnl"], data["commission"], data["unrealized_pnl"], data["net_pnl"])


@dataclass(slots=True)
class Lot:
    """One holding's running account from its fills: open quantity, its cost, realized PnL, commissions."""

    multiplier: Decimal = _ONE
    quantity: Decimal = _ZERO
    cost: Decimal = _ZERO  # the open quantity's signed cost in money: sum(qty x price x multiplier) + commissions
    realized: Decimal = _ZERO
    commission: Decimal = _ZERO

    @property
    def avg_cost(self) -> Decimal:
        """Return the average cost per unit (without the multiplier, with the opening commissions); 0 when flat."""
        if self.quantity == 0:
            return _ZERO
        return self.cost / (self.quantity * self.multiplier)

    def apply(self, signed_qty: Decimal, price: Decimal, commission: Decimal = _ZERO) -> Decimal:
        """Add a fill of ``signed_qty`` (positive bought) at ``price`` that cost ``commission``.

        Return how much of the fill closed the position (0: it only opened or added), what
        :meth:`add_commission` needs when the fill's commission comes later.
        """
        if signed_qty == 0:
            return _ZERO
        self.commission += commission
        held = self.quantity
        closing = _ZERO if held == 0 or (held > 0) == (signed_qty > 0) else min(abs(signed_qty), abs(held))
        if closing:
            # The commission splits between the closing part and what a reversal opens, exactly.
            closing_commission = commission if closing == abs(signed_qty) else \
                (commission * closing / abs(signed_qty)).quantize(COST_QUANTUM)
            commission -= closing_commission
            released = self.cost if closing == abs(held) else (self.cost * closing / abs(held)).quantize(COST_QUANTUM)
            closed = closing if held > 0 else -closing  # the closed part, signed as the position was
            self.realized += closed * price * self.multiplier - released - closing_commission
            self.cost -= released
            self.quantity = held - closed
            signed_qty += closed
        if signed_qty:  # opening or adding (or the rest of a reversal)
            self.cost += signed_qty * price * self.multiplier + commission
            self.quantity += signed_qty
        if self.quantity == 0:
            self.cost = _ZERO
        return closing

    def add_commission(self, commission: Decimal, signed_qty: Decimal, closing: Decimal = _ZERO) -> None:
        """Count a commission reported after its fill of ``signed_qty`` was counted (``closing`` of it closed).

        It is split as :meth:`apply` splits one that comes with its fill: the
        closing part's share goes to the realized PnL, the opening part's to
        the open position's cost (so the average cost and the realized PnL are
        what they are when the fills are counted again, commissions known, at a
        resync). Were the position no longer on the side the fill opened (it
        was closed before the commission came), the opening share is realized.
        """
        self.commission += commission
        size = abs(signed_qty)
        closing_commission = commission if closing >= size else (commission * closing / size).quantize(COST_QUANTUM)
        opening_commission = commission - closing_commission
        self.realized -= closing_commission
        if opening_commission and self.quantity != 0 and (self.quantity > 0) == (signed_qty > 0):
            self.cost += opening_commission
        else:
            self.realized -= opening_commission

    def figures(self, market_price: Decimal | None) -> Figures:
        """Return the figures, marked at ``market_price`` (None: unrealized and net are not known)."""
        return Figures.of(self.quantity, self.avg_cost, self.multiplier, market_price, realized=self.realized,
                          commission=self.commission, cost=self.cost)
