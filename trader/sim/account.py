"""The simulated account: cash by currency, positions with IB's average cost, realized and unrealized PnL.

Pure bookkeeping in Decimal. Executions come in through :meth:`Account.apply`;
marks (the market's mid) and FX rates are passed in when values are asked
for, so nothing here reads a market or a clock. Conventions follow IB's
reports: ``avg_cost`` is per unit *including* the multiplier and the
commission of the opening fills (a long's cost plus them, a short's proceeds
less them: sell 100 at 10 with $1 commission is an average cost of 9.99);
realized PnL is net of commissions (a fill that flips a position splits its
commission by quantity between the closing part and the opening one). The
cost and realized PnL are kept by the platform's own :class:`~trader.domain.figures.Lot`,
so the sim's figures and the strategy ledger's agree to the digit; a stock,
option or FX position moves cash by its notional, a future only by its
realized PnL and commissions (futures are not marked to market daily here).
Margin figures are deliberately simple (a flat rate of the gross value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from trader.domain import Action, SecType
from trader.domain.figures import Lot
from trader.sim.catalogue import SimInstrument
from trader.sim.orders import Execution

__all__ = ["Account", "Holding", "PortfolioRow"]

_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_INIT_MARGIN = {SecType.FUT: Decimal("0.06"), SecType.CASH: Decimal("0.03")}
_DEFAULT_INIT_MARGIN = Decimal("0.25")
_MAINT_FRACTION = Decimal("0.8")

Marks = Callable[[int], Decimal | None]
Rates = Callable[[str], Decimal | None]


@dataclass(slots=True)
class Holding:
    """One position: signed quantity, IB's average cost, realized PnL so far."""

    instrument: SimInstrument
    lot: Lot = field(default_factory=Lot)  # quantity, cost (commissions in) and realized PnL, as the ledger keeps them
    avg_price: Decimal = _ZERO  # like avg_cost without the commissions: what futures settle against

    @property
    def quantity(self) -> Decimal:
        """Return the signed position."""
        return self.lot.quantity

    @property
    def avg_cost(self) -> Decimal:
        """Return IB's average cost: per unit, the multiplier and the opening commissions included."""
        return self.lot.avg_cost * self.lot.multiplier

    @property
    def realized(self) -> Decimal:
        """Return the realized PnL so far, net of commissions."""
        return self.lot.realized


@dataclass(frozen=True, slots=True)
class PortfolioRow:
    """One updatePortfolio line, in the instrument's currency."""

    holding: Holding
    market_price: Decimal
    market_value: Decimal
    unrealized: Decimal


class Account:
    """The one account tws-sim books every fill into."""

    def __init__(self, account_id: str, base_currency: str, cash: Decimal) -> None:
        self.id = account_id
        self.base = base_currency
        self.cash: dict[str, Decimal] = {base_currency: cash}
        self.holdings: dict[int, Holding] = {}
        self.realized_pnl = _ZERO
        self.commissions = _ZERO

    def apply(self, execution: Execution) -> Decimal | None:
        """Book an execution; return its realized PnL (net of its commission), None if it only opened."""
        inst = execution.instrument
        mult = inst.multiplier
        holding = self.holdings.get(inst.conid)
        if holding is None:
            holding = self.holdings[inst.conid] = Holding(inst, Lot(mult))
        signed = execution.shares if execution.action is Action.BUY else -execution.shares
        price, commission = execution.price, execution.commission
        currency = inst.contract.currency
        futures = inst.contract.sec_type is SecType.FUT
        self.cash[self.base] = self.cash.get(self.base, _ZERO) - commission
        self.commissions += commission
        if not futures:
            self.cash[currency] = self.cash.get(currency, _ZERO) - signed * price * mult
        held = holding.quantity
        before = holding.lot.realized
        holding.lot.apply(signed, price, commission)
        if held == 0 or (held > 0) == (signed > 0):
            holding.avg_price = (holding.avg_price * abs(held) + price * mult * abs(signed)) / abs(held + signed)
            return None
        closed = min(abs(signed), abs(held))
        direction = 1 if held > 0 else -1
        if futures:  # settle the price difference; commissions were paid as they came
            settled = (price * mult - holding.avg_price) * closed * direction
            self.cash[currency] = self.cash.get(currency, _ZERO) + settled
        if holding.quantity == 0:
            holding.avg_price = _ZERO
        elif (holding.quantity > 0) != (held > 0):  # flipped: the rest opened at this fill
            holding.avg_price = price * mult
        realized = holding.lot.realized - before
        self.realized_pnl += realized
        return realized

    def margin_change(self, inst: SimInstrument, signed_quantity: Decimal, price: Decimal,
                      rates: Rates) -> tuple[Decimal, Decimal]:
        """Return (initial, maintenance) margin an order would add, in base currency, were it filled at ``price``.

        The same flat rates as :meth:`values`: what the order adds to the
        holding's size (a reducing order frees margin: negative).
        """
        held = self.holdings[inst.conid].quantity if inst.conid in self.holdings else _ZERO
        grown = abs(held + signed_quantity) - abs(held)
        value = self._to_base(grown * price * inst.multiplier, inst.contract.currency, rates)
        init = (value * _INIT_MARGIN.get(inst.contract.sec_type, _DEFAULT_INIT_MARGIN)).quantize(_CENT)
        return init, (init * _MAINT_FRACTION).quantize(_CENT)

    def rows(self, marks: Marks) -> list[PortfolioRow]:
        """Return a portfolio line for every instrument ever held (closed ones at zero)."""
        rows = []
        for holding in self.holdings.values():
            inst = holding.instrument
            mark = marks(inst.conid)
            if mark is None:
                mark = holding.avg_cost / inst.multiplier if holding.quantity else _ZERO
            value = holding.quantity * mark * inst.multiplier
            unrealized = value - holding.lot.cost
            rows.append(PortfolioRow(holding, mark, value, unrealized))
        return rows

    def _to_base(self, amount: Decimal, currency: str, rates: Rates) -> Decimal:
        if currency == self.base:
            return amount
        rate = rates(currency)
        return amount * rate if rate is not None else _ZERO

    def values(self, marks: Marks, rates: Rates) -> list[tuple[str, str, str]]:
        """Return (tag, value, currency) for updateAccountValue and the account summary, in base currency."""
        cash = sum((self._to_base(v, c, rates) for c, v in self.cash.items()), _ZERO)
        stock_value = futures_pnl = unrealized = gross = init = _ZERO
        for row in self.rows(marks):
            inst = row.holding.instrument
            kind = inst.contract.sec_type
            unrealized_base = self._to_base(row.unrealized, inst.contract.currency, rates)
            value_base = self._to_base(row.market_value, inst.contract.currency, rates)
            unrealized += unrealized_base
            gross += abs(value_base)
            init += abs(value_base) * _INIT_MARGIN.get(kind, _DEFAULT_INIT_MARGIN)
            if kind is SecType.FUT:
                futures_pnl += unrealized_base
            else:
                stock_value += value_base
        net = cash + stock_value + futures_pnl
        maint = init * _MAINT_FRACTION
        available = net - init
        base = self.base

        def money(value: Decimal) -> str:
            return format(value.quantize(_CENT), "f")

        values = [
            ("AccountCode", self.id, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("Currency", base, base),
            ("NetLiquidation", money(net), base),
            ("TotalCashValue", money(cash), base),
            ("SettledCash", money(cash), base),
            ("AccruedCash", "0.00", base),
            ("GrossPositionValue", money(gross), base),
            ("StockMarketValue", money(stock_value), base),
            ("UnrealizedPnL", money(unrealized), base),
            ("RealizedPnL", money(self.realized_pnl), base),
            ("EquityWithLoanValue", money(net), base),
            ("InitMarginReq", money(init), base),
            ("MaintMarginReq", money(maint), base),
            ("FullInitMarginReq", money(init), base),
            ("FullMaintMarginReq", money(maint), base),
            ("AvailableFunds", money(available), base),
            ("FullAvailableFunds", money(available), base),
            ("ExcessLiquidity", money(net - maint), base),
            ("FullExcessLiquidity", money(net - maint), base),
            ("BuyingPower", money(max(available, _ZERO) * 4), base),
            ("Cushion", format(((net - maint) / net).quantize(Decimal("0.0001")) if net else _ZERO, "f"), ""),
        ]
        for currency, amount in sorted(self.cash.items()):
            values.append(("CashBalance", money(amount), currency))
        values.append(("CashBalance", money(cash), "BASE"))
        return values
