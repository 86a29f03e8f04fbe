"""Domain objects: contracts, orders and their lifecycle, and the records of what happened.

Everything here is pure data with validation: no I/O, no broker, no clock
except as a default for ``created_at``. Booked money is ``Decimal``; market
data is ``float``; times are aware UTC datetimes.
"""

from trader.domain.contract import Contract
from trader.domain.enums import Action, OrderStatus, OrderType, Right, SecType, TimeInForce
from trader.domain.order import Order
from trader.domain.records import AccountValue, Bar, Fill, Position, Tick

__all__ = [
    "AccountValue",
    "Action",
    "Bar",
    "Contract",
    "Fill",
    "Order",
    "OrderStatus",
    "OrderType",
    "Position",
    "Right",
    "SecType",
    "Tick",
    "TimeInForce",
]
