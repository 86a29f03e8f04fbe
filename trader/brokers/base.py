"""The broker seam: the one interface through which the platform trades, whichever broker is behind it.

:class:`Broker` is what the trading layer (desk, reconcile, resolver, broker
totals) and the trader service use, and all they use: every argument and
result is a domain object (:mod:`trader.domain`) or a broker record
(:mod:`trader.brokers.records`), never a broker library's own type. An
implementation keeps its library's handles to itself, keyed by our client
order id or the contract's ``conid``. :class:`~trader.brokers.ib.adapter.IbAdapter`
is the implementation for Interactive Brokers; :mod:`trader.brokers.factory`
picks one by the settings' ``broker`` name.

The streams are reactivex Subjects, fed on the service's event loop:

- ``ticks``: lists of tick dicts of subscribed instruments, keyed like the
  :class:`~trader.domain.Tick` record (the bus's payload, published as is);
- ``order_updates``: an :class:`OrderReport` on each status report of an order;
- ``fills``: a :class:`~trader.domain.Fill`, once its commission is known;
- ``position_updates``, ``portfolio_updates``: a :class:`~trader.domain.Position`
  (the portfolio's with market values) as the broker reports a change;
- ``account_updates``: an :class:`~trader.domain.AccountValue` as reported;
- ``errors``: ``(request id, code, message)`` for every broker error or notice;
- ``connection``: True on connect, once every ``on_connected`` hook has returned (a hook that raises
  leaves it unsaid), False on loss.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from reactivex.subject import Subject

from trader.brokers.records import (
    ContractDetails,
    ContractQuery,
    OrderPreview,
    OrderReport,
    Quote,
    SymbolMatch,
)
from trader.domain import AccountValue, Bar, Contract, Fill, Order, Position

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Broker"]


@runtime_checkable
class Broker(Protocol):
    """A broker connection: orders, account, contracts and market data, in domain objects."""

    ticks: Subject[list[dict[str, Any]]]
    order_updates: Subject[OrderReport]
    fills: Subject[Fill]
    position_updates: Subject[Position]
    portfolio_updates: Subject[Position]
    account_updates: Subject[AccountValue]
    errors: Subject[tuple[int, int, str]]
    connection: Subject[bool]
    on_connected: list[Callable[[], Awaitable[None]]]
    """Called in order after every (re)connect, before ``connection`` says True: the re-sync goes here."""
    connects: int
    last_error: str | None
    account: str | None
    """The account orders go to, from the broker's own settings (None: the broker's default)."""
    view_complete: bool
    """Whether this connection's order and execution lists hold the done orders too (then an order the
    broker does not list never reached it)."""

    # -- connection ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Return where the connection goes, for status: the broker's name and its endpoint (no secrets)."""
        ...

    @property
    def connected(self) -> bool:
        """Return whether the connection is up."""
        ...

    def start(self) -> None:
        """Start connecting in the background, and keep reconnecting until :meth:`stop`."""
        ...

    async def stop(self) -> None:
        """Disconnect and stop reconnecting; safe to call twice."""
        ...

    async def reconnect(self) -> None:
        """Drop the connection and make it again."""
        ...

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and re-synced; return whether that happened within ``timeout`` seconds."""
        ...

    def require_connection(self) -> None:
        """Raise Unavailable unless connected."""
        ...

    async def current_time(self) -> datetime:
        """Return the broker's clock."""
        ...

    # -- orders ----------------------------------------------------------------------
    def next_order_id(self) -> int:
        """Return a broker order id no order of this session has used."""
        ...

    def place_orders(self, orders: Sequence[Order]) -> None:
        """Send new orders, each with its ``broker_order_id`` set: one order, or a bracket.

        A bracket is its entry, then the children whose ``parent_id`` names it;
        the broker acts on none of them until the last is in. The sends come
        last: nothing that can wait runs after them. A send that fails raises,
        and the orders before it were sent.
        """
        ...

    async def what_if(self, order: Order, timeout: float = 10.0) -> OrderPreview:
        """Return what ``order`` would cost (commission, margin) were it sent; nothing is placed.

        A refusal by the broker (a price off the tick grid, an unknown
        contract) is a BrokerError with the broker's code and message.
        """
        ...

    def has_order(self, client_order_id: str) -> bool:
        """Return whether this session can modify or cancel the order: placed or reported since connecting."""
        ...

    def sent_order_id(self, client_order_id: str) -> int | None:
        """Return the broker order id this session last sent or was told of for the order (None: neither).

        A new id after an attempt to place the order means it reached the
        broker; the same one means nothing of that attempt was sent.
        """
        ...

    def modify_order(self, order: Order) -> None:
        """Send a working order's new quantity and prices (its client order id names it)."""
        ...

    def cancel_order(self, client_order_id: str) -> None:
        """Ask the broker to cancel the order; NotFound unless :meth:`has_order`."""
        ...

    def cancel_all_orders(self) -> None:
        """Cancel every open order of the account, whoever placed it (IB's global cancel)."""
        ...

    def open_orders(self) -> list[OrderReport]:
        """Return this session's client's working orders (and those placed by hand), each with ``order``."""
        ...

    def completed_orders(self) -> list[OrderReport]:
        """Return the day's done orders of this session's client (and those placed by hand)."""
        ...

    def executions(self) -> list[Fill]:
        """Return the day's executions of this session's client's orders (and those placed by hand)."""
        ...

    # -- account ---------------------------------------------------------------------
    def accounts(self) -> list[str]:
        """Return the accounts this connection manages."""
        ...

    def account_values(self) -> list[AccountValue]:
        """Return the accounts' values (NetLiquidation, RealizedPnL...) as last reported."""
        ...

    def positions(self) -> list[Position]:
        """Return the positions (a position the domain cannot read is logged and left out)."""
        ...

    def portfolio(self) -> list[Position]:
        """Return the positions with market price and value, unrealized and realized PnL."""
        ...

    def gross_market_value(self) -> Decimal:
        """Return the sum of |market value| over every holding the broker reports.

        Those the domain cannot model (and :meth:`portfolio` leaves out) count too:
        the risk gate's gross exposure must not shrink by what it cannot read.
        """
        ...

    # -- contracts and market data -----------------------------------------------------
    async def contract_details(self, query: ContractQuery) -> list[ContractDetails]:
        """Return the contracts that match ``query`` (none: an empty list)."""
        ...

    async def search(self, pattern: str) -> list[SymbolMatch]:
        """Return the broker's symbol search for ``pattern`` (IB: at most 16, symbols starting with it first)."""
        ...

    def subscribe(self, contract: Contract, owner: str = "user") -> None:
        """Stream ``contract``'s ticks on behalf of ``owner``; one stream per contract key, however many owners."""
        ...

    def unsubscribe(self, key: str, owner: str = "user") -> bool:
        """Let ``owner``'s stream of ``key`` go (it stops once no owner is left); return whether it had one."""
        ...

    def subscriptions(self) -> dict[str, set[str]]:
        """Return the keys streamed, each with the owners that want it."""
        ...

    def quote(self, contract: Contract) -> Quote | None:
        """Return the streamed contract's current top of book (None: not streamed)."""
        ...

    async def snapshot(self, contract: Contract, timeout: float = 5.0) -> dict[str, Any]:
        """Return a one-off tick for ``contract`` (the live one when streamed), keyed like the Tick record."""
        ...

    async def history(self, contract: Contract, *, end: str, duration: str, bar_size: str, what_to_show: str,
                      use_rth: bool, timeout: float = 60.0) -> list[Bar]:
        """Return historical bars (``end`` empty: up to now), paced to the broker's limits."""
        ...

    async def history_frame(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                            what_to_show: str, use_rth: bool, timeout: float = 60.0) -> pd.DataFrame:
        """Return the bars :meth:`history` would, as one bar frame: a download's many bars without a record each.

        The index is ``time`` (UTC bar starts); the columns ``open high low close
        volume``, and ``bar_count`` where the broker counted every bar's trades.
        """
        ...
