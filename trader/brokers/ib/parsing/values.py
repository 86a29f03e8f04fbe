"""IB parsing, values: IB's spellings to the domain's and back, its floats to exact Decimals, its order statuses.

IB's spellings (``"STP LMT"``, ``"BOT"``, ``"PreSubmitted"``...) map to domain
enums through the lookup tables below, in both directions. ib_async carries
quantities and prices as floats, with ``UNSET_DOUBLE`` (``sys.float_info.max``)
or NaN for "no value"; :func:`decimal_from_float` turns them into exact
Decimals (``231.37`` stays ``Decimal('231.37')``) or ``None``.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from ib_async.util import UNSET_DOUBLE

from trader.domain import Action, OrderStatus, OrderType, Right, SecType, TimeInForce
from trader.errors import ValidationError

__all__ = [
    "ACTIONS",
    "EXEC_SIDES",
    "IB_ACTIONS",
    "IB_ORDER_TYPES",
    "IB_RIGHTS",
    "IB_SEC_TYPES",
    "IB_STATUSES",
    "IB_TIFS",
    "ORDER_TYPES",
    "RIGHTS",
    "SEC_TYPES",
    "TIFS",
    "ZERO",
    "decimal_from_float",
    "decimal_from_text",
    "ib_price",
    "lookup",
    "order_status",
    "required_decimal",
]

SEC_TYPES: dict[str, SecType] = {
    "STK": SecType.STK,
    "FUT": SecType.FUT,
    "OPT": SecType.OPT,
    "CASH": SecType.CASH,
    "IND": SecType.IND,
    "CMDTY": SecType.CMDTY,
}
IB_SEC_TYPES: dict[SecType, str] = {member: code for code, member in SEC_TYPES.items()}

# IB writes an option's right several ways; "?" and "0" mean "not an option".
RIGHTS: dict[str, Right | None] = {
    "C": Right.C, "CALL": Right.C, "P": Right.P, "PUT": Right.P, "": None, "?": None, "0": None,
}  # fmt: skip
IB_RIGHTS: dict[Right | None, str] = {Right.C: "C", Right.P: "P", None: ""}

IB_ACTIONS: dict[Action, str] = {Action.BUY: "BUY", Action.SELL: "SELL"}
EXEC_SIDES: dict[str, Action] = {"BOT": Action.BUY, "SLD": Action.SELL}

IB_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MKT: "MKT",
    OrderType.LMT: "LMT",
    OrderType.STP: "STP",
    OrderType.STP_LMT: "STP LMT",
    OrderType.TRAIL: "TRAIL",
}
IB_TIFS: dict[TimeInForce, str] = {
    TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK",
}  # fmt: skip
ACTIONS: dict[str, Action] = {code: member for member, code in IB_ACTIONS.items()}
ORDER_TYPES: dict[str, OrderType] = {code: member for member, code in IB_ORDER_TYPES.items()}
TIFS: dict[str, TimeInForce] = {code: member for member, code in IB_TIFS.items()}

IB_STATUSES: dict[str, OrderStatus] = {
    "PendingSubmit": OrderStatus.PENDING_SUBMIT,
    "ApiPending": OrderStatus.PENDING_SUBMIT,
    "PreSubmitted": OrderStatus.PRE_SUBMITTED,
    "Submitted": OrderStatus.SUBMITTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "ApiCancelled": OrderStatus.API_CANCELLED,
    "Cancelled": OrderStatus.CANCELLED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.INACTIVE,
}
# Working statuses that IB keeps reporting while an order fills piece by piece.
_WORKING = frozenset({OrderStatus.PRE_SUBMITTED, OrderStatus.SUBMITTED})

ZERO = Decimal(0)
# Below 2**53 every integral float is an exact int: write 100.0 as Decimal('100').
_EXACT_INT_LIMIT = 2.0**53


def decimal_from_float(x: float | Decimal | None) -> Decimal | None:
    """Return ``x`` as the Decimal its shortest repr spells, or ``None`` if it is no value.

    ``None``, NaN, infinities and ib_async's ``UNSET_DOUBLE`` give ``None``.
    A float becomes ``Decimal(repr(x))``, so ``231.37`` is ``Decimal('231.37')``
    and not the binary expansion; an integral float becomes an integral
    Decimal (``100.0`` is ``Decimal('100')``). A Decimal passes through
    (``None`` if it is not finite).
    """
    if x is None:
        return None
    if isinstance(x, Decimal):
        return x if x.is_finite() else None
    if isinstance(x, bool):
        raise ValidationError(f"expected a number, got bool {x!r}")
    value = float(x)
    if not math.isfinite(value) or value == UNSET_DOUBLE:
        return None
    if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
        return Decimal(int(value))
    return Decimal(repr(value))


def decimal_from_text(text: str | None) -> Decimal | None:
    """Return a number IB sends as text (account values, a what-if's margins) as its exact Decimal, or ``None``.

    The Decimal keeps the text's own digits (``"1234.56"`` is
    ``Decimal('1234.56')``). ``None`` for what is no number: empty text,
    words (an account's ``"DU1234567"``), NaN, infinities and IB's unset
    double written out (``"1.7976931348623157E308"``).
    """
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    if not value.is_finite() or float(value) == UNSET_DOUBLE:
        return None
    return value


def required_decimal(name: str, x: float | Decimal | None) -> Decimal:
    """Return ``x`` as :func:`decimal_from_float` does; ValidationError naming ``name`` if it is no value."""
    value = decimal_from_float(x)
    if value is None:
        raise ValidationError(f"{name} is missing (got {x!r})")
    return value


K = TypeVar("K")
V = TypeVar("V")


def lookup(table: dict[K, V], code: K, what: str) -> V:
    """Return ``table[code]``; ValidationError naming ``what`` and the known codes if it has none."""
    try:
        return table[code]
    except KeyError:
        known = ", ".join(repr(k) for k in table)
        raise ValidationError(f"unknown IB {what} {code!r} (known: {known})") from None


def ib_price(value: Decimal | None) -> float:
    """Return a price as IB takes it: ``UNSET_DOUBLE`` for no price."""
    return UNSET_DOUBLE if value is None else float(value)


def order_status(status: str, filled: Decimal, remaining: Decimal) -> OrderStatus | None:
    """Return the domain status for IB's ``status`` report, or ``None`` if it is unknown.

    IB reports a partly filled working order as ``Submitted`` (or
    ``PreSubmitted``) with both ``filled`` and ``remaining`` above zero: that
    is PARTIALLY_FILLED. ``None`` (``"ApiUpdate"``, ``"ValidationError"``...)
    is for the caller to log.
    """
    result = IB_STATUSES.get(status)
    if result in _WORKING and filled > 0 and remaining > 0:
        return OrderStatus.PARTIALLY_FILLED
    return result
