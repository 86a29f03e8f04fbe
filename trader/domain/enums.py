"""Domain enums: security types, order sides and types, and the order status lifecycle.

Every enum is a ``StrEnum`` whose values equal its member names, so a member
prints, logs and compares as a plain string. The broker's own spellings (IB's
``"PreSubmitted"``, ``"STP LMT"``...) are not used here: the broker adapter maps
them to these members through plain lookup tables, which keeps this module free
of any one broker's vocabulary.

The order lifecycle is one table, ``_TRANSITIONS``: for each status, the set of
statuses it may move to. A status with no way out is terminal.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Action", "OrderStatus", "OrderType", "Right", "SecType", "TimeInForce"]


class SecType(StrEnum):
    """The kind of instrument, as IB classifies it."""

    STK = "STK"
    FUT = "FUT"
    OPT = "OPT"
    CASH = "CASH"
    IND = "IND"
    CMDTY = "CMDTY"


class Right(StrEnum):
    """An option's right: call or put."""

    C = "C"
    P = "P"


class Action(StrEnum):
    """The side of an order or fill."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """Return +1 for BUY and -1 for SELL: the sign a fill adds to a position."""
        return 1 if self is Action.BUY else -1

    @property
    def opposite(self) -> Action:
        """Return the other side (the side that closes a position opened by this one)."""
        return Action.SELL if self is Action.BUY else Action.BUY


class OrderType(StrEnum):
    """How an order is priced; each type's required prices are checked by ``Order``."""

    MKT = "MKT"
    LMT = "LMT"
    STP = "STP"
    STP_LMT = "STP_LMT"
    TRAIL = "TRAIL"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    """Where an order is in its life, modelled on IB's order statuses.

    IB's ``PendingSubmit``, ``PreSubmitted``, ``Submitted``, ``PendingCancel``,
    ``ApiCancelled``, ``Cancelled``, ``Filled`` and ``Inactive`` map one to one;
    ``PARTIALLY_FILLED`` (IB reports it as ``Submitted`` with a non-zero filled
    quantity) and ``REJECTED`` (refused by our risk gate or by the broker) are ours.
    """

    PENDING_SUBMIT = "PENDING_SUBMIT"
    PRE_SUBMITTED = "PRE_SUBMITTED"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    API_CANCELLED = "API_CANCELLED"
    CANCELLED = "CANCELLED"
    FILLED = "FILLED"
    INACTIVE = "INACTIVE"
    REJECTED = "REJECTED"

    def can_transition(self, to: OrderStatus) -> bool:
        """Return whether an order in this status may move to ``to``.

        Staying in the same status is not a transition (``Order.transition``
        treats a repeated status report as a no-op).
        """
        return to in _TRANSITIONS[self]

    @property
    def is_terminal(self) -> bool:
        """Return whether the order is done: no status can follow this one."""
        return not _TRANSITIONS[self]

    @property
    def next_statuses(self) -> frozenset[OrderStatus]:
        """Return the statuses this one may move to."""
        return _TRANSITIONS[self]


_S = OrderStatus

# The whole lifecycle in one place. Fills and cancels race status reports at the
# broker (a market order can fill before its Submitted arrives; a fill can land
# while a cancel is pending; a refused cancel puts the order back to working),
# so those edges are legal rather than errors.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.PENDING_SUBMIT: frozenset(
        {
            _S.PRE_SUBMITTED,
            _S.SUBMITTED,
            _S.PARTIALLY_FILLED,
            _S.FILLED,
            _S.PENDING_CANCEL,
            _S.API_CANCELLED,
            _S.CANCELLED,
            _S.INACTIVE,
            _S.REJECTED,
        }
    ),
    _S.PRE_SUBMITTED: frozenset(
        {
            _S.SUBMITTED,
            _S.PARTIALLY_FILLED,
            _S.FILLED,
            _S.PENDING_CANCEL,
            _S.API_CANCELLED,
            _S.CANCELLED,
            _S.INACTIVE,
            _S.REJECTED,
        }
    ),
    _S.SUBMITTED: frozenset(
        {
            _S.PARTIALLY_FILLED,
            _S.FILLED,
            _S.PENDING_CANCEL,
            _S.CANCELLED,
            _S.INACTIVE,
            _S.REJECTED,
        }
    ),
    _S.PARTIALLY_FILLED: frozenset(
        {
            _S.FILLED,
            _S.PENDING_CANCEL,
            _S.CANCELLED,
            _S.INACTIVE,
        }
    ),
    _S.PENDING_CANCEL: frozenset(
        {
            _S.PRE_SUBMITTED,
            _S.SUBMITTED,
            _S.PARTIALLY_FILLED,
            _S.FILLED,
            _S.API_CANCELLED,
            _S.CANCELLED,
            _S.INACTIVE,
        }
    ),
    _S.API_CANCELLED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.FILLED: frozenset(),
    _S.INACTIVE: frozenset(),
    _S.REJECTED: frozenset(),
}

del _S
