"""Order: an instruction to trade and its lifecycle from submission to a terminal status.

An ``Order`` is mutable because it has a life: its status moves along the table
in :mod:`trader.domain.enums` and its fills accumulate. Construction validates
the instruction (quantity, the prices each order type needs); afterwards the
only sanctioned ways to change its state are :meth:`Order.transition` and
:meth:`Order.apply_fill`, which refuse what the lifecycle does not allow.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING

from trader.domain import checks
from trader.domain.contract import Contract
from trader.domain.enums import Action, OrderStatus, OrderType, TimeInForce
from trader.errors import Conflict, ValidationError

if TYPE_CHECKING:
    from trader.domain.records import Fill

__all__ = ["Order"]

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass(slots=True)
class Order:
    """An order for ``quantity`` of ``contract``, identified by our ``client_order_id``.

    Prices and quantities are Decimals (ints and numeric strings are converted,
    floats refused). Price fields a given ``order_type`` does not use must be
    left ``None``, so a limit price on a market order is an error rather than
    silently ignored. ``order_ref`` says who placed the order (a strategy name,
    or ``"manual"``). The lifecycle fields (``status`` onwards) default to a
    new, unfilled order; they are passed explicitly only when an order is
    rebuilt (from the journal or the wire).
    """

    client_order_id: str
    contract: Contract
    action: Action
    quantity: Decimal
    order_type: OrderType = OrderType.MKT
    _: KW_ONLY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    outside_rth: bool = False
    parent_id: str | None = None
    oca_group: str | None = None
    order_ref: str = "manual"
    account: str | None = None
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    filled_quantity: Decimal = _ZERO
    avg_fill_price: Decimal | None = None
    broker_order_id: int | None = None
    perm_id: int | None = None
    created_at: datetime = field(default_factory=checks.utc_now)
    updated_at: datetime | None = None

    def __copy__(self) -> Order:
        # A snapshot of the order's state (the journal keeps one per event): every field, unvalidated, as the
        # original passed. Half the cost of copy's generic path (reduce, then a setattr per slot) when cold.
        twin = object.__new__(type(self))
        for name, value in zip(_FIELD_NAMES, _field_values(self), strict=True):
            setattr(twin, name, value)
        return twin

    def __post_init__(self) -> None:
        self.client_order_id = checks.text("Order.client_order_id", self.client_order_id)
        if not isinstance(self.contract, Contract):
            raise ValidationError(
                f"Order.contract must be a Contract, got {type(self.contract).__name__}"
            )
        self.action = checks.enum_member("Order.action", Action, self.action)
        self.quantity = checks.decimal("Order.quantity", self.quantity, positive=True)
        self.order_type = checks.enum_member("Order.order_type", OrderType, self.order_type)
        self.limit_price = checks.optional_decimal(
            "Order.limit_price", self.limit_price, positive=True
        )
        self.stop_price = checks.optional_decimal(
            "Order.stop_price", self.stop_price, positive=True
        )
        self.trail_amount = checks.optional_decimal(
            "Order.trail_amount", self.trail_amount, positive=True
        )
        self.trail_percent = checks.optional_decimal(
            "Order.trail_percent", self.trail_percent, positive=True
        )
        self.tif = checks.enum_member("Order.tif", TimeInForce, self.tif)
        self.outside_rth = checks.flag("Order.outside_rth", self.outside_rth)
        self.parent_id = checks.optional_text("Order.parent_id", self.parent_id)
        self.oca_group = checks.optional_text("Order.oca_group", self.oca_group)
        self.order_ref = checks.text("Order.order_ref", self.order_ref)
        self.account = checks.optional_text("Order.account", self.account)
        self.status = checks.enum_member("Order.status", OrderStatus, self.status)
        self.filled_quantity = checks.decimal(
            "Order.filled_quantity", self.filled_quantity, non_negative=True
        )
        self.avg_fill_price = checks.optional_decimal("Order.avg_fill_price", self.avg_fill_price)
        self.broker_order_id = checks.optional_integer(
            "Order.broker_order_id", self.broker_order_id
        )
        self.perm_id = checks.optional_integer("Order.perm_id", self.perm_id)
        self.created_at = checks.utc_datetime("Order.created_at", self.created_at)
        if self.updated_at is None:
            self.updated_at = self.created_at
        else:
            self.updated_at = checks.utc_datetime("Order.updated_at", self.updated_at)
        self._check_prices()
        self._check_fills()
        if self.parent_id == self.client_order_id:
            raise ValidationError(f"order {self.client_order_id!r} cannot be its own parent")

    def _check_prices(self) -> None:
        kind = self.order_type
        needs_limit = kind in (OrderType.LMT, OrderType.STP_LMT)
        needs_stop = kind in (OrderType.STP, OrderType.STP_LMT)
        if needs_limit and self.limit_price is None:
            raise ValidationError(f"{self._who()} needs a limit_price > 0")
        if needs_stop and self.stop_price is None:
            raise ValidationError(f"{self._who()} needs a stop_price > 0")
        if not needs_limit and self.limit_price is not None:
            raise ValidationError(f"{self._who()} takes no limit_price (got {self.limit_price})")
        # A TRAIL order may carry its initial trigger in stop_price.
        if not needs_stop and kind is not OrderType.TRAIL and self.stop_price is not None:
            raise ValidationError(f"{self._who()} takes no stop_price (got {self.stop_price})")
        trails = (self.trail_amount is not None) + (self.trail_percent is not None)
        if kind is OrderType.TRAIL:
            if trails != 1:
                raise ValidationError(
                    f"{self._who()} needs exactly one of trail_amount and trail_percent (got {trails})"
                )
            if self.trail_percent is not None and self.trail_percent >= _HUNDRED:
                raise ValidationError(
                    f"{self._who()}: trail_percent must be < 100, got {self.trail_percent}"
                )
        elif trails:
            raise ValidationError(f"{self._who()} takes no trail_amount or trail_percent")

    def _who(self) -> str:
        return f"{self.order_type} order {self.client_order_id!r}"

    def _check_fills(self) -> None:
        if self.filled_quantity > self.quantity:
            raise ValidationError(
                f"order {self.client_order_id!r}: filled_quantity {self.filled_quantity} "
                f"exceeds quantity {self.quantity}"
            )
        if self.filled_quantity and self.avg_fill_price is None:
            raise ValidationError(f"order {self.client_order_id!r} has fills but no avg_fill_price")

    @property
    def remaining(self) -> Decimal:
        """Return the quantity still to fill (zero once done, whatever the status)."""
        return self.quantity - self.filled_quantity

    @property
    def is_done(self) -> bool:
        """Return whether the order reached a terminal status."""
        return self.status.is_terminal

    @property
    def signed_quantity(self) -> Decimal:
        """Return the quantity with the action's sign: positive to buy, negative to sell."""
        return self.quantity if self.action is Action.BUY else -self.quantity

    def transition(self, new_status: OrderStatus, at: datetime | None = None) -> bool:
        """Move to ``new_status`` if the lifecycle allows it; return whether the status changed.

        A repeat of the current status is a no-op (brokers resend status
        reports); any other move not in the table raises ``Conflict``. ``at``
        is the event's time (default: now), recorded in ``updated_at``.
        """
        new_status = checks.enum_member("new_status", OrderStatus, new_status)
        if new_status is self.status:
            return False
        if not self.status.can_transition(new_status):
            raise Conflict(
                f"order {self.client_order_id!r} cannot go from {self.status} to {new_status}",
                client_order_id=self.client_order_id,
                status=str(self.status),
                requested=str(new_status),
            )
        self.status = new_status
        self.updated_at = checks.utc_now() if at is None else checks.utc_datetime("at", at)
        return True

    def apply_fill(self, fill: Fill) -> None:
        """Book ``fill`` against this order: add its quantity, average the price, move the status.

        The order becomes PARTIALLY_FILLED or FILLED. Raises ``Conflict`` if the
        fill belongs to another order, has the other side, would overfill, or
        the order's status does not allow a fill. De-duplicating repeated
        executions (same ``exec_id``) is the caller's job.
        """
        who = f"order {self.client_order_id!r}"
        if fill.client_order_id != self.client_order_id:
            raise Conflict(f"fill {fill.exec_id!r} is for {fill.client_order_id!r}, not {who}")
        if fill.action is not self.action:
            raise Conflict(f"fill {fill.exec_id!r} is a {fill.action}, {who} is a {self.action}")
        filled = self.filled_quantity + fill.quantity
        if filled > self.quantity:
            raise Conflict(
                f"fill {fill.exec_id!r} of {fill.quantity} overfills {who}: "
                f"{self.filled_quantity} of {self.quantity} already filled"
            )
        new_status = OrderStatus.FILLED if filled == self.quantity else OrderStatus.PARTIALLY_FILLED
        if new_status is not self.status and not self.status.can_transition(new_status):
            raise Conflict(f"{who} in status {self.status} cannot take fill {fill.exec_id!r}")
        previous_cost = (self.avg_fill_price or _ZERO) * self.filled_quantity
        self.avg_fill_price = (previous_cost + fill.price * fill.quantity) / filled
        self.filled_quantity = filled
        self.status = new_status
        self.updated_at = fill.time


_FIELD_NAMES = tuple(f.name for f in fields(Order))
_field_values = attrgetter(*_FIELD_NAMES)
