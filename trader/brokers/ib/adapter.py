"""The IB connection: one ib_async client on the service's loop, a watchdog, and the :class:`Broker` seam over it.


:class:`IbAdapter` owns the ``ib_async.IB`` object and is the platform's
:class:`~trader.brokers.base.Broker` for Interactive Brokers: everything it
takes and returns is a domain object, converted by
:mod:`trader.brokers.ib.parsing`; ib_async's own objects stay in here (the
orders' Trades in :class:`~trader.brokers.ib.orders.IbOrders`, by client order
id; the contracts to trade by conid). Its connection (backoff with jitter, the
watchdog, the re-sync hooks after every (re)connect) is its base,
:class:`~trader.brokers.ib.connection.IbConnection`; after every (re)connect
it re-requests market data for the instruments subscribed before the
``on_connected`` hooks run. Only the ``...Async`` request methods are used,
never ib_async's blocking wrappers: everything runs on the one loop that
``main()`` owns.

The streams are those of :class:`~trader.brokers.base.Broker`; a status
report, modify or cancel of an order is an ``order_updates`` report (a new
order placed through :meth:`IbAdapter.place_orders` emits none until IB answers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import ib_async
import pandas as pd
from ib_async import IB, RequestError, Trade
from reactivex.subject import Subject

from trader.brokers.ib import parsing
from trader.brokers.ib.connection import IbConnection
from trader.brokers.ib.market_data import IbMarketData
from trader.brokers.ib.orders import IbOrders
from trader.brokers.records import (
    ContractDetails,
    ContractQuery,
    OrderPreview,
    OrderReport,
    Quote,
    SymbolMatch,
)
from trader.config import IbSettings, TradingSettings
from trader.data.pacing import Pacer, PacingRules
from trader.domain import AccountValue, Bar, Contract, Fill, Order, Position
from trader.errors import BrokerError, TraderError

log = logging.getLogger(__name__)

__all__ = ["IbAdapter"]

HISTORY_MAX_WAIT = 10.0  # seconds trader_service's history waits for a pacing slot before it is Overloaded
T = TypeVar("T")


class IbAdapter(IbConnection):
    """The one IB API connection of the trader service: the :class:`~trader.brokers.base.Broker` for IB."""

    def __init__(self, ib_settings: IbSettings, trading: TradingSettings, *, ib: IB | None = None,
                 pacer: Pacer | None = None) -> None:
        """Connect with ``ib_settings``; history goes through ``pacer`` (default: IB's rules, waits up to 10 s)."""
        super().__init__(ib_settings, trading, ib)
        self.ticks: Subject[list[dict[str, Any]]] = Subject()
        self.order_updates: Subject[OrderReport] = Subject()
        self.fills: Subject[Fill] = Subject()
        self.position_updates: Subject[Position] = Subject()
        self.portfolio_updates: Subject[Position] = Subject()
        self.account_updates: Subject[AccountValue] = Subject()
        self.errors: Subject[tuple[int, int, str]] = Subject()
        self._orders = IbOrders(self.ib, self._ib_contract)
        # First: the handles of the orders IB lists as the connection is made, before any re-sync.
        self.on_connected.insert(0, self._index_orders)
        self._market = IbMarketData(self.ib, self._ib_contract, self.require_connection, pacer or Pacer(
            PacingRules(max_requests=trading.history_requests_per_10min), max_wait=HISTORY_MAX_WAIT))
        self.account: str | None = ib_settings.account or None
        self._contracts: dict[int, ib_async.Contract] = {}  # conid -> the contract orders are placed with
        self._unconverted: set[tuple[str, int | None]] = set()  # (what, conid) already logged as unreadable
        self._wire_events()

    # -- events ------------------------------------------------------------------
    def _wire_events(self) -> None:
        ib = self.ib
        ib.pendingTickersEvent += self._on_tickers
        for event in (ib.orderStatusEvent, ib.newOrderEvent, ib.orderModifyEvent, ib.cancelOrderEvent):
            event += self._on_order
        ib.commissionReportEvent += self._on_commission
        ib.positionEvent += lambda p: self._convert(self.position_updates, parsing.from_ib_position, p)
        ib.updatePortfolioEvent += lambda i: self._convert(self.portfolio_updates, parsing.from_ib_portfolio_item, i)
        ib.accountValueEvent += lambda v: self._convert(self.account_updates, parsing.from_ib_account_value, v)
        ib.errorEvent += self._on_error

    def _convert(self, subject: Subject[T], convert: Callable[[Any], T], value: Any) -> None:
        try:
            converted = convert(value)
        except TraderError as exc:  # an instrument the domain does not model (a FOP, a BAG...)
            log.debug("IB report not converted (%s): %r", exc, value)
            return
        self._emit(subject, converted)

    def _on_tickers(self, tickers: Any) -> None:
        ticks = self._market.ticks(tickers)
        if ticks:
            self._emit(self.ticks, ticks)

    def _on_order(self, trade: Trade) -> None:
        report = parsing.order_update(trade)
        if report.client_order_id is not None:
            self._orders.track(report.client_order_id, trade)
        self._emit(self.order_updates, report)

    def _on_commission(self, trade: Trade, fill: ib_async.Fill, _report: Any) -> None:
        # An order of ours the re-sync has yet to adopt (IB reports the day's executions while the
        # connection is made, before the re-sync) is still ours: its orderRef says so.
        coid = (parsing.client_order_id_of(trade.order.orderRef or "")
                or parsing.client_order_id_of(fill.execution.orderRef or ""))
        try:
            converted = parsing.from_ib_fill(fill, coid)
        except TraderError:
            log.exception("an execution could not be read: %r", fill.execution)
            return
        self._emit(self.fills, converted)

    def _on_error(self, req_id: int, code: int, message: str, _contract: Any = None) -> None:
        if code in (1100, 2110):  # connectivity between TWS and IB's servers lost
            log.warning("IB %d: %s", code, message)
        self._emit(self.errors, (req_id, code, message))

    def _forget_session(self) -> None:
        self._orders.forget()

    async def _index_orders(self) -> None:
        self._orders.index()

    def _resubscribe(self) -> None:
        self._market.resubscribe()

    # -- orders --------------------------------------------------------------------
    def next_order_id(self) -> int:
        """Return the next IB order id of this session."""
        return self.ib.client.getReqId()

    def place_orders(self, orders: Sequence[Order]) -> None:
        """Send one order or a bracket (entry first); each send comes last (see :mod:`trader.brokers.ib.orders`)."""
        self._orders.place(orders)

    async def what_if(self, order: Order, timeout: float = 10.0) -> OrderPreview:
        """Return IB's what-if answer for ``order``: commission and margin changes; nothing is placed."""
        self.require_connection()
        return await self._orders.what_if(order, timeout)

    def has_order(self, client_order_id: str) -> bool:
        """Return whether this session has the order's Trade: placed, reported or listed since connecting."""
        return self._orders.has(client_order_id)

    def sent_order_id(self, client_order_id: str) -> int | None:
        """Return the IB order id of the order's Trade in this session (None: it has none)."""
        return self._orders.order_id(client_order_id)

    def modify_order(self, order: Order) -> None:
        """Re-send a working order's quantity and prices under its IB order id."""
        self._orders.modify(order)

    def cancel_order(self, client_order_id: str) -> None:
        """Ask IB to cancel the order; NotFound unless :meth:`has_order`."""
        self._orders.cancel(client_order_id)

    def cancel_all_orders(self) -> None:
        """Send IB's global cancel: every open order of the account, whoever placed it."""
        self.ib.reqGlobalCancel()

    def _own_trades(self) -> list[Trade]:
        client_id = self.settings.client_id
        return [t for t in self.ib.trades() if t.order.clientId in (client_id, 0)]

    def _order_reports(self, done: bool) -> list[OrderReport]:
        trades = self._own_trades()
        parents = {t.order.orderId: parsing.client_order_id_of(t.order.orderRef or "")
                   for t in trades if t.order.orderId}
        return [parsing.order_report(t, parents.get(t.order.parentId)) for t in trades if t.isDone() is done]

    def open_orders(self) -> list[OrderReport]:
        """Return this client's working orders (and those placed in TWS), as IB listed and reported them."""
        return self._order_reports(False)

    def completed_orders(self) -> list[OrderReport]:
        """Return this client's done orders of the day (and those placed in TWS)."""
        return self._order_reports(True)

    def executions(self) -> list[Fill]:
        """Return the day's executions of this client's orders (and those placed in TWS); unreadable ones logged."""
        client_id, fills = self.settings.client_id, []
        for ib_fill in self.ib.fills():
            execution = ib_fill.execution
            if execution.clientId not in (client_id, 0):
                continue
            try:
                fills.append(parsing.from_ib_fill(ib_fill, parsing.client_order_id_of(execution.orderRef or "")))
            except TraderError as exc:
                log.warning("execution %s skipped: %s", execution.execId, exc)
        return fills

    # -- account -------------------------------------------------------------------
    def _converted(self, what: str, convert: Callable[[Any], T], items: list[Any]) -> list[T]:
        out = []
        for item in items:
            try:
                out.append(convert(item))
            except TraderError as exc:  # logged once per contract: the risk gate reads these at every recompute
                conid = getattr(getattr(item, "contract", None), "conId", None)
                if (what, conid) not in self._unconverted:
                    self._unconverted.add((what, conid))
                    log.warning("%s skipped (the domain cannot model it; logged once per contract): %s", what, exc)
        return out

    def accounts(self) -> list[str]:
        """Return the accounts this connection manages."""
        return self.ib.managedAccounts()

    def account_values(self) -> list[AccountValue]:
        """Return the account values IB last reported."""
        return self._converted("account value", parsing.from_ib_account_value, self.ib.accountValues())

    def positions(self) -> list[Position]:
        """Return the positions (one the domain cannot read is logged and left out)."""
        return self._converted("position", parsing.from_ib_position, self.ib.positions())

    def portfolio(self) -> list[Position]:
        """Return the positions with market values and PnL (one the domain cannot read is logged and left out)."""
        return self._converted("portfolio item", parsing.from_ib_portfolio_item, self.ib.portfolio())

    def gross_market_value(self) -> Decimal:
        """Return the sum of |market value| over every holding IB reports, those :meth:`portfolio` leaves out too."""
        return parsing.gross_market_value(self.ib.portfolio())

    # -- contracts and market data -------------------------------------------------
    def _ib_contract(self, contract: Contract) -> ib_async.Contract:
        """Return the ib_async contract to trade or stream ``contract`` with (IB's own, once looked up)."""
        conid = contract.conid
        found = self._contracts.get(conid) if conid else None
        if found is None:
            found = parsing.tradable_ib_contract(parsing.to_ib_contract(contract))
            if conid:
                self._contracts[conid] = found
        return found

    async def contract_details(self, query: ContractQuery) -> list[ContractDetails]:
        """Return IB's contracts matching ``query`` (none: empty); each is kept to trade and stream with."""
        self.require_connection()
        try:
            found = await self.ib.reqContractDetailsAsync(parsing.to_ib_query(query))
        except RequestError as exc:
            if exc.code == 200:  # "No security definition has been found"
                return []
            raise BrokerError(f"IB refused the contract details request: {exc.message}", code=exc.code) from None
        out = []
        for details in found:
            if details.contract is None:
                continue
            out.append(parsing.from_ib_contract_details(details))
            self._contracts[details.contract.conId] = parsing.tradable_ib_contract(details.contract)
        return out

    async def search(self, pattern: str) -> list[SymbolMatch]:
        """Return IB's reqMatchingSymbols answer for ``pattern`` (at most 16; IB paces it: about one a second)."""
        self.require_connection()
        try:
            found = await self.ib.reqMatchingSymbolsAsync(pattern)
        except RequestError as exc:
            raise BrokerError(f"IB refused the symbol search {pattern!r}: {exc.message}", code=exc.code) from None
        out = []
        for desc in found or []:
            c = desc.contract
            if c is None or not c.conId:
                continue
            out.append(SymbolMatch(c.conId, c.symbol, c.secType, c.primaryExchange or c.exchange, c.currency,
                                   c.description or "", tuple(desc.derivativeSecTypes or ())))
        return out

    def subscribe(self, contract: Contract, owner: str = "user") -> None:
        """Stream market data for ``contract`` on behalf of ``owner`` (kept across reconnects).

        One stream per instrument, whoever asks: it lasts until every owner has
        let it go (:meth:`unsubscribe`). IB limits the streams open at once (100
        lines by default), so each is held only while someone wants it.
        """
        self._market.subscribe(contract, owner)

    def unsubscribe(self, key: str, owner: str = "user") -> bool:
        """Let ``owner``'s stream of ``key`` go (it stops once no owner is left); return whether it had one."""
        return self._market.unsubscribe(key, owner)

    def subscriptions(self) -> dict[str, set[str]]:
        """Return the keys streamed, each with its owners."""
        return self._market.subscriptions()

    def quote(self, contract: Contract) -> Quote | None:
        """Return the streamed contract's top of book (None: not streamed, or no ticker yet)."""
        return self._market.quote(contract)

    async def snapshot(self, contract: Contract, timeout: float = 5.0) -> dict[str, Any]:
        """Return a one-off tick for ``contract`` (the live one when streamed with a bid and ask)."""
        return await self._market.snapshot(contract, timeout)

    async def history(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                      what_to_show: str, use_rth: bool, timeout: float = 60.0) -> list[Bar]:
        """Return historical bars, paced to IB's rules (:mod:`trader.data.pacing`); see IbMarketData.history."""
        return await self._market.history(contract, end=end, duration=duration, bar_size=bar_size,
                                          what_to_show=what_to_show, use_rth=use_rth, timeout=timeout)

    async def history_frame(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                            what_to_show: str, use_rth: bool, timeout: float = 60.0) -> pd.DataFrame:
        """Return historical bars as one bar frame, paced as :meth:`history` (for downloads: no record per bar)."""
        return await self._market.history_frame(contract, end=end, duration=duration, bar_size=bar_size,
                                                what_to_show=what_to_show, use_rth=use_rth, timeout=timeout)
