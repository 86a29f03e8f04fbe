"""Broker records: what the broker seam carries besides the domain's own objects, in domain terms.

A broker reports orders (status reports, open and completed orders) as
:class:`OrderReport`, a quote as :class:`Quote`, a contract it knows as
:class:`ContractDetails`; a lookup asks with a :class:`ContractQuery`, which
may leave out what a :class:`~trader.domain.Contract` may not (a future's
expiry: then the broker lists every one). Nothing here names a broker's own
types. ``OrderReport`` and ``Quote`` are named tuples: one is built per status
report and per priced order, on the order path, where a tuple is the cheapest
immutable record Python has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from trader.domain import Contract, Order, OrderStatus, SecType

__all__ = ["ContractDetails", "ContractQuery", "OrderPreview", "OrderReport", "Quote", "SymbolMatch"]


class OrderReport(NamedTuple):
    """One order as the broker reports it: a status report, or a line of its open or completed orders.

    ``client_order_id`` is ours, read from the reference the order carries
    (``order_ref``, ``"<strategy>#<client order id>"``); ``None`` for an order
    placed elsewhere (in TWS by hand). ``broker_order_id`` is ``None`` where the
    broker gives none (IB's completed orders). ``status`` is ``None`` for a
    status the domain does not know (``status_text`` names it). ``avg_fill_price``
    is ``None`` until something filled, or where the broker does not say.
    ``reason`` is the broker's last error or notice about the order. ``order``
    is the order as placed, in listings only (``None`` on status reports, for
    an order not ours, or one the domain cannot read).
    """

    client_order_id: str | None
    order_ref: str
    broker_order_id: int | None
    perm_id: int | None
    status: OrderStatus | None
    status_text: str
    filled: Decimal
    remaining: Decimal
    avg_fill_price: Decimal | None = None
    reason: str = ""
    order: Order | None = None


@dataclass(frozen=True, slots=True)
class OrderPreview:
    """What the broker says an order would do, were it sent (IB's what-if order); ``None`` where it says nothing.

    The margin figures are the account's, in its base currency: ``*_change``
    what the order adds, ``*_after`` the total with it. IB gives a commission
    range (``min_commission``..``max_commission``) when it cannot know the
    exact figure; ``warning`` is its warning text.
    """

    commission: Decimal | None
    min_commission: Decimal | None
    max_commission: Decimal | None
    commission_currency: str
    init_margin_change: Decimal | None
    maint_margin_change: Decimal | None
    equity_with_loan_change: Decimal | None
    init_margin_after: Decimal | None = None
    maint_margin_after: Decimal | None = None
    equity_with_loan_after: Decimal | None = None
    warning: str = ""


class Quote(NamedTuple):
    """The current top of book of a streamed instrument: positive prices, ``None`` where unknown.

    ``bid`` and ``ask`` are ``None`` when that side of the book is empty (no
    price, or no size); ``last`` is the last trade's price.
    """

    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None


@dataclass(frozen=True, slots=True)
class ContractDetails:
    """A contract the broker knows (qualified: it has its ``conid``), with its tick and minimum size."""

    contract: Contract
    tick: Decimal
    min_size: Decimal
    long_name: str = ""
    last_trade: datetime | None = None  # when trading in it stops (IB's lastTradeTime in its timeZoneId), if known

    @property
    def key(self) -> str:
        """Return the contract's key (``AAPL.STK``, ``CL.FUT.202701``)."""
        return self.contract.key


@dataclass(frozen=True, slots=True)
class ContractQuery:
    """What to look a contract up by: a symbol and what is known of the rest.

    Empty fields are left to the broker: a future without ``expiry`` or
    ``local_symbol`` lists every expiry. ``expiry`` is, as IB reads its
    ``lastTradeDateOrContractMonth``, a last trade date ``YYYYMMDD`` or a
    contract month ``YYYYMM`` (``CL`` ``202701`` is CLF7, whose last trade is
    in December 2026); ``right`` is ``"C"``, ``"P"`` or empty. ``symbol`` may
    be empty when ``local_symbol`` names the contract.
    """

    symbol: str
    sec_type: SecType = SecType.STK
    exchange: str = ""
    currency: str = "USD"
    expiry: str = ""
    local_symbol: str = ""
    right: str = ""
    strike: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SymbolMatch:
    """One answer of the broker's symbol search (IB's reqMatchingSymbols: a ContractDescription).

    ``exchange`` is the primary listing (IB's primaryExchange); ``derivatives``
    the sec types listed on it (a stock's ``OPT``, an index's ``FUT``).
    ``sec_type`` is the broker's text, which the domain may not model.
    """

    conid: int
    symbol: str
    sec_type: str
    exchange: str
    currency: str
    description: str = ""
    derivatives: tuple[str, ...] = ()
