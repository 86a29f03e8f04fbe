"""The IB connection: one ib_async client on the service's loop, a watchdog, and the :class:`Broker` seam over it.

:class:`IbAdapter` owns the ``ib_async.IB`` object and is the platform's
:class:`~trader.brokers.base.Broker` for Interactive Brokers: everything it
takes and returns is a domain object, converted by
:mod:`trader.brokers.ib.parsing`; ib_async's own objects stay in here (the
orders' Trades in :class:`~trader.brokers.ib.orders.IbOrders`, by client order
id; the contracts to trade by conid). It connects with exponential backoff and
jitter (a start-up request of ib_async's that fails, completed orders or
executions say, fails the connect: ``view_complete`` holds only once all
came), and a watchdog notices a dead connection either from ib_async's
``disconnectedEvent`` or from a periodic ``reqCurrentTime`` that gets no
answer. After every (re)connect it re-requests market data for the
instruments subscribed and then calls the ``on_connected`` hooks, where the
trader service re-syncs orders, positions and executions. Only the
``...Async`` request methods are used, never ib_async's blocking wrappers:
everything runs on the one loop that ``main()`` owns.

The streams are those of :class:`~trader.brokers.base.Broker`; a status
report, modify or cancel of an order is an ``order_updates`` report (a new
order placed through :meth:`IbAdapter.place_orders` emits none until IB answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import ib_async
import pandas as pd
from ib_async import IB, RequestError, Trade
from reactivex.subject import Subject

from trader.brokers.ib import parsing
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
from trader.errors import BrokerError, TraderError, Unavailable
from trader.retry import RetryPolicy

log = logging.getLogger(__name__)

__all__ = ["IbAdapter"]

WATCHDOG_INTERVAL = 5.0
HISTORY_MAX_WAIT = 10.0  # seconds trader_service's history waits for a pacing slot before it is Overloaded
_CONNECT_ERRORS = (OSError, TimeoutError, ConnectionError, RequestError)  # a connect that failed: made again
T = TypeVar("T")


class IbAdapter:
    """The one IB API connection of the trader service: the :class:`~trader.brokers.base.Broker` for IB."""

    def __init__(self, ib_settings: IbSettings, trading: TradingSettings, *, ib: IB | None = None,
                 pacer: Pacer | None = None) -> None:
        """Connect with ``ib_settings``; history goes through ``pacer`` (default: IB's rules, waits up to 10 s)."""
        self.settings = ib_settings
        self.trading = trading
        self.ib = ib or IB()
        self.ib.RaiseRequestErrors = True
        self.ib.client.MaxRequests = trading.ib_max_requests
        self.ib.client.RequestsInterval = trading.ib_requests_interval
        self.ticks: Subject[list[dict[str, Any]]] = Subject()
        self.order_updates: Subject[OrderReport] = Subject()
        self.fills: Subject[Fill] = Subject()
        self.position_updates: Subject[Position] = Subject()
        self.portfolio_updates: Subject[Position] = Subject()
        self.account_updates: Subject[AccountValue] = Subject()
        self.errors: Subject[tuple[int, int, str]] = Subject()
        self.connection: Subject[bool] = Subject()
        self._orders = IbOrders(self.ib, self._ib_contract)
        # First: the handles of the orders IB lists as the connection is made, before any re-sync.
        self.on_connected: list[Callable[[], Awaitable[None]]] = [self._index_orders]
        self._market = IbMarketData(self.ib, self._ib_contract, self.require_connection, pacer or Pacer(
            PacingRules(max_requests=trading.history_requests_per_10min), max_wait=HISTORY_MAX_WAIT))
        self.connects = 0
        self.last_error: str | None = None
        self.account: str | None = ib_settings.account or None
        # Whether this connection fetched the completed orders and the executions (see _connect_loop):
        # only then is an order IB does not report proof that it never reached IB.
        self.view_complete = False
        self._stopping = False
        self._connector: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
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
        ib.disconnectedEvent += self._on_disconnected

    @staticmethod
    def _emit(subject: Subject[Any], value: Any) -> None:
        # A failing observer must not break ib_async's event dispatch, nor the other observers.
        try:
            subject.on_next(value)
        except Exception:
            log.exception("an observer of an IB event failed; the stream goes on")

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

    def _on_disconnected(self) -> None:
        self.view_complete = False
        self._orders.forget()
        self._emit(self.connection, False)
        if not self._stopping:
            log.warning("IB connection to %s:%d lost; reconnecting", self.settings.host, self.settings.port)
            self._start_connector()

    async def _index_orders(self) -> None:
        self._orders.index()

    # -- connection ----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Return the IB API endpoint and client id this adapter connects with."""
        return {"broker": "ib", "ib": f"{self.settings.host}:{self.settings.port}",
                "client_id": self.settings.client_id}

    @property
    def connected(self) -> bool:
        """Return whether the connection is up."""
        return self.ib.isConnected()

    def start(self) -> None:
        """Start connecting in the background (and keep reconnecting until :meth:`stop`)."""
        # ib_async logs every order message at INFO, a full Trade repr each: costly per order and
        # redundant with the journal. Its warnings and errors still come through.
        logging.getLogger("ib_async").setLevel(max(logging.WARNING, logging.getLogger().level))
        self._stopping = False
        self._start_connector()
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until connected (and re-synced); return whether it happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected and (self._connector is None or self._connector.done()):
                return True
            await asyncio.sleep(0.02)
        return False

    async def stop(self) -> None:
        """Disconnect and stop reconnecting; safe to call twice."""
        self._stopping = True
        for task in (self._connector, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._connector = self._watchdog = None
        if self.ib.isConnected():
            self.ib.disconnect()

    async def reconnect(self) -> None:
        """Drop the connection and connect again (as the watchdog would)."""
        if self.ib.isConnected():
            self.ib.disconnect()  # fires disconnectedEvent, which starts the connector
        else:
            self._start_connector()

    def _start_connector(self) -> None:
        if self._connector is None or self._connector.done():
            self._connector = asyncio.get_running_loop().create_task(self._connect_loop())

    async def _connect_loop(self) -> None:
        while await self._connect_with_backoff():
            self.connects += 1
            self.last_error = None
            self.view_complete = self.ib.client.serverVersion() >= 150  # ib_async asks completed orders from 150
            log.info("IB connected to %s:%d as client %d (server version %s, accounts %s)",
                     self.settings.host, self.settings.port, self.settings.client_id,
                     self.ib.client.serverVersion(), ",".join(self.ib.wrapper.accounts))
            self._resubscribe()
            synced = await self._run_hooks()
            if self.connected:
                if synced:
                    self._emit(self.connection, True)
                return
            # Lost while re-syncing: its disconnectedEvent could not start a connector (this one runs).
            log.warning("IB connection lost while re-syncing; reconnecting")

    async def _run_hooks(self) -> bool:
        """Call the ``on_connected`` hooks in order; return False (and stop) at the first that raises."""
        for hook in self.on_connected:
            try:
                await hook()
            except Exception as exc:  # a hook retries what can be retried: this one gave up
                self.last_error = f"re-sync failed: {type(exc).__name__}: {exc}"
                log.exception("re-sync after connecting failed: the connection is not reported up")
                return False
        return True

    async def _connect_with_backoff(self) -> bool:
        """Connect, retrying with backoff and jitter; return True once connected, False if stopping."""
        if self._stopping:
            return False
        policy = RetryPolicy(self.trading.reconnect_initial, self.trading.reconnect_max,
                             jitter=0.5)  # jitter: no thundering herd
        try:
            await policy.call(self._connect_once, retry_on=_CONNECT_ERRORS, logger=log,
                              what=f"IB connect to {self.settings.host}:{self.settings.port}",
                              give_up=lambda: self._stopping)
        except _CONNECT_ERRORS:
            return False
        return True

    async def _connect_once(self) -> None:
        self.view_complete = False
        try:
            # raiseSyncErrors: a start-up request (positions, open and completed orders, executions,
            # account updates) that timed out fails the connect, which is then made again; without it
            # ib_async would only log it, and the re-sync would take a partial view for the whole.
            await self.ib.connectAsync(
                self.settings.host, self.settings.port, clientId=self.settings.client_id,
                timeout=self.trading.connect_timeout, account=self.settings.account or "",
                raiseSyncErrors=True)
        except _CONNECT_ERRORS as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.ib.disconnect()
            raise


    async def _watch(self) -> None:
        """Ask the time every few seconds: a connection that stops answering is dropped and re-made."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            if not self.connected or (self._connector is not None and not self._connector.done()):
                continue
            try:
                await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), WATCHDOG_INTERVAL)
            except (TimeoutError, ConnectionError):
                log.warning("IB did not answer within %.0f s; reconnecting", WATCHDOG_INTERVAL)
                self.ib.disconnect()

    def _resubscribe(self) -> None:
        self._market.resubscribe()

    def require_connection(self) -> None:
        """Raise Unavailable unless connected."""
        if not self.connected:
            reason = f" ({self.last_error})" if self.last_error else ""
            raise Unavailable(f"not connected to IB at {self.settings.host}:{self.settings.port}{reason}")

    async def current_time(self) -> datetime:
        """Return IB's clock."""
        self.require_connection()
        return await self.ib.reqCurrentTimeAsync()

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
