"""The commission schedule: what an execution costs, one function for tws-sim and the backtest.

IB's fixed pricing, by kind of instrument: stocks pay per share with a
minimum per order and a maximum of a percent of the trade's value (IB: $0.005
a share, at least $1.00, at most 1 %), futures per contract, options per
contract with a minimum, FX a fraction of the notional with a minimum. The
amount is rounded to the cent. tws-sim charges its executions with
:func:`commission` and the backtest charges its orders with the same call, so
the two agree to the cent on every fill.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from trader.config import StrictModel
from trader.domain.enums import SecType

__all__ = ["CommissionConfig", "commission"]

_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)


class CommissionConfig(StrictModel):
    """IB-style commissions per kind: per unit with a minimum (and for stocks a maximum)."""

    stock_per_share: Decimal = Field(Decimal("0.005"), ge=0)
    stock_min: Decimal = Field(Decimal("1.00"), ge=0)
    stock_max_percent: Decimal = Field(Decimal("1.0"), gt=0, description="at most this percent of the trade value")
    future_per_contract: Decimal = Field(Decimal("2.25"), ge=0)
    option_per_contract: Decimal = Field(Decimal("0.65"), ge=0)
    option_min: Decimal = Field(Decimal("1.00"), ge=0)
    fx_rate: Decimal = Field(Decimal("0.00002"), ge=0, description="of the traded notional")
    fx_min: Decimal = Field(Decimal("2.00"), ge=0)


def commission(config: CommissionConfig, sec_type: SecType, quantity: Decimal, price: Decimal) -> Decimal:
    """Return what one execution of ``quantity`` (unsigned) at ``price`` costs, rounded to the cent."""
    if sec_type is SecType.FUT:
        amount = config.future_per_contract * quantity
    elif sec_type is SecType.OPT:
        amount = max(config.option_min, config.option_per_contract * quantity)
    elif sec_type is SecType.CASH:
        amount = max(config.fx_min, config.fx_rate * quantity * price)
    else:
        amount = max(config.stock_min, config.stock_per_share * quantity)
        amount = min(amount, config.stock_max_percent / _HUNDRED * quantity * abs(price))
    return amount.quantize(_CENT)  # the context's rounding (half even), as tws-sim always charged
