"""Simulated orders and what happens to them: tickets, the engine's order state, executions, events.

Plain records shared by the matching engine (:mod:`trader.sim.engine`), the
wire encoders (:mod:`trader.sim.order_wire`) and the account. Money is Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trader.domain import Action, Order, OrderStatus, OrderType, TimeInForce
from trader.domain.commission import CommissionConfig, commission
from trader.sim.catalogue import SimInstrument

__all__ = [
    "CommissionSchedule",
    "EngineEvent",
    "Execution",
    "OrderChanged",
    "OrderError",
    "OrderFilled",
    "OrderKey",
    "OrderTicket",
    "Quote",
    "SimOrder",
]

OrderKey = tuple[int, int]  # (client id, order id): how TWS names an API order


@dataclass(frozen=True, slots=True)
class Quote:
    """The top of book the engine matches against."""

    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    last: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """A checked order instruction in domain terms (new order or modification)."""

    client_id: int
    order_id: int
    instrument: SimInstrument
    action: Action
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    oca_group: str = ""
    oca_type: int = 0
    parent_id: int = 0
    transmit: bool = True
    outside_rth: bool = False
    account: str = ""
    order_ref: str = ""

    @property
    def key(self) -> OrderKey:
        return (self.client_id, self.order_id)


@dataclass(slots=True)
class SimOrder:
    """An order inside the engine: the ticket, its domain lifecycle and the venue's state."""

    ticket: OrderTicket
    order: Order
    perm_id: int
    trail_stop: Decimal | None = None
    triggered: bool = False
    held: bool = False
    last_fill_price: Decimal | None = None
    completed_time: datetime | None = None
    completed_status: str = ""

    @property
    def key(self) -> OrderKey:
        return self.ticket.key

    @property
    def client_id(self) -> int:
        return self.ticket.client_id

    @property
    def order_id(self) -> int:
        return self.ticket.order_id

    @property
    def instrument(self) -> SimInstrument:
        return self.ticket.instrument

    @property
    def status(self) -> OrderStatus:
        return self.order.status

    @property
    def is_working(self) -> bool:
        """Return whether the order is transmitted and not done."""
        return not self.held and not self.order.is_done


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill as TWS reports it in execDetails and commissionReport."""

    exec_id: str
    time: datetime
    client_id: int
    order_id: int
    perm_id: int
    instrument: SimInstrument
    action: Action
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    commission: Decimal
    commission_currency: str
    account: str
    order_ref: str

    @property
    def side(self) -> str:
        """Return IB's side: ``BOT`` or ``SLD``."""
        return "BOT" if self.action is Action.BUY else "SLD"


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """The order's status or terms changed: report orderStatus (and openOrder)."""

    order: SimOrder


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """The order traded: report execDetails and commissionReport."""

    order: SimOrder
    execution: Execution


@dataclass(frozen=True, slots=True)
class OrderError:
    """Report IB error ``code`` for the order (a rejection, a refused cancel, a cancel notice)."""

    client_id: int
    order_id: int
    code: int
    text: str


EngineEvent = OrderChanged | OrderFilled | OrderError


class CommissionSchedule:
    """Commission per execution, by kind of instrument: :func:`trader.domain.commission.commission`."""

    def __init__(self, config: CommissionConfig) -> None:
        self.config = config

    def __call__(self, instrument: SimInstrument, quantity: Decimal, price: Decimal) -> Decimal:
        return commission(self.config, instrument.contract.sec_type, quantity, price)
