"""The IB connection: one ib_async client on the service's loop, a watchdog, and its events as Rx streams.

:class:`IbAdapter` owns the ``ib_async.IB`` object. It connects with
exponential backoff and jitter (a start-up request of ib_async's that fails,
completed orders or executions say, fails the connect: ``view_complete`` holds
only once all came), and a watchdog notices a dead connection
either from ib_async's ``disconnectedEvent`` or from a periodic
``reqCurrentTime`` that gets no answer. After every (re)connect it re-requests
market data for the instruments subscribed and then calls the ``on_connected``
hooks, where the trader service re-syncs orders, positions and executions.
Only the ``...Async`` request methods are used, never ib_async's blocking
wrappers: everything runs on the one loop that ``main()`` owns.

The streams (reactivex Subjects) carry ib_async's own objects; turning them
into domain objects is :mod:`trader.brokers.ib.parsing`'s job:

- ``tickers``: lists of updated ``Ticker``s;
- ``order_status``: ``Trade`` on each status report, modify or cancel (and a new order placed
  through ``ib.placeOrder``; :meth:`IbAdapter.place_order` emits none);
- ``executions``: ``(Trade, Fill)`` when an execution arrives;
- ``commissions``: ``(Trade, Fill)`` once its commission report is in;
- ``positions``, ``portfolio``, ``account_values``: ``Position``, ``PortfolioItem``, ``AccountValue``;
- ``errors``: ``(req_id, code, message)`` for every IB error/notice;
- ``connection``: True on connect, False on loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ib_async import (
    IB,
    Contract,
    ContractDetails,
    Order,
    OrderStatus,
    RequestError,
    Ticker,
    Trade,
    TradeLogEntry,
)
from reactivex.subject import Subject

from trader.config import IbSettings, TradingSettings
from trader.errors import Overloaded, Unavailable
from trader.retry import RetryPolicy

log = logging.getLogger(__name__)

__all__ = ["IbAdapter", "Pacer", "PlacedTrade"]

WATCHDOG_INTERVAL = 5.0
_CONNECT_ERRORS = (OSError, TimeoutError, ConnectionError, RequestError)  # a connect that failed: made again


class Pacer:
    """A sliding-window limit: at most ``limit`` calls per ``window`` seconds, waiting up to ``max_wait``."""

    def __init__(self, limit: int, window: float, max_wait: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_wait, self.clock = limit, window, max_wait, clock
        self._calls: deque[float] = deque()

    def delay(self) -> float:
        """Return how long the next call must wait (0: now)."""
        now = self.clock()
        while self._calls and now - self._calls[0] >= self.window:
            self._calls.popleft()
        if len(self._calls) < self.limit:
            return 0.0
        return self._calls[0] + self.window - now

    async def acquire(self) -> None:
        """Wait for a slot; raise Overloaded if that would take longer than ``max_wait``."""
        wait = self.delay()
        if wait > self.max_wait:
            raise Overloaded(f"IB pacing: {self.limit} requests per {self.window:g} s used; retry in {wait:.0f} s",
                             retry_after=round(wait, 1))
        if wait > 0:
            await asyncio.sleep(wait)
        self._calls.append(self.clock())


class PlacedTrade(Trade):
    """The ``Trade`` of an order sent by :meth:`IbAdapter.place_order`: the same, with a one-line repr.

    ib_async puts the Trade into an f-string at every status report, logging
    on or not; its generated repr compares each of the order's ~130 fields
    with its default. This one names the order in a line.
    """

    def __repr__(self) -> str:
        order = self.order
        return (f"Trade({self.contract.symbol} {order.action} {order.totalQuantity:g} {order.orderType} "
                f"id {order.orderId} ref {order.orderRef!r}: {self.orderStatus.status})")


class IbAdapter:
    """The one IB API connection of the trader service."""

    def __init__(self, ib_settings: IbSettings, trading: TradingSettings, *, ib: IB | None = None) -> None:
        self.settings = ib_settings
        self.trading = trading
        self.ib = ib or IB()
        self.ib.RaiseRequestErrors = True
        self.ib.client.MaxRequests = trading.ib_max_requests
        self.ib.client.RequestsInterval = trading.ib_requests_interval
        self.tickers: Subject[list[Ticker]] = Subject()
        self.order_status: Subject[Any] = Subject()
        self.executions: Subject[tuple[Any, Any]] = Subject()
        self.commissions: Subject[tuple[Any, Any]] = Subject()
        self.positions: Subject[Any] = Subject()
        self.portfolio: Subject[Any] = Subject()
        self.account_values: Subject[Any] = Subject()
        self.errors: Subject[tuple[int, int, str]] = Subject()
        self.connection: Subject[bool] = Subject()
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self.subscriptions: dict[str, Contract] = {}
        self.owners: dict[str, set[str]] = {}  # key -> who wants its stream ("user", "desk")
        self.history_pacer = Pacer(trading.history_requests_per_10min, 600.0)
        self.connects = 0
        self.last_error: str | None = None
        # Whether this connection fetched the completed orders and the executions (see _connect_loop):
        # only then is an order IB does not report proof that it never reached IB.
        self.view_complete = False
        self._stopping = False
        self._connector: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._details: dict[int, ContractDetails] = {}
        self._keys: dict[int, str] = {}  # conid -> key of the subscribed contracts
        self._wire_events()

    # -- events ------------------------------------------------------------------
    def _wire_events(self) -> None:
        ib = self.ib
        ib.pendingTickersEvent += lambda tickers: self._emit(self.tickers, list(tickers))
        for event in (ib.orderStatusEvent, ib.newOrderEvent, ib.orderModifyEvent, ib.cancelOrderEvent):
            event += lambda trade: self._emit(self.order_status, trade)
        ib.execDetailsEvent += lambda trade, fill: self._emit(self.executions, (trade, fill))
        ib.commissionReportEvent += lambda trade, fill, _report: self._emit(self.commissions, (trade, fill))
        ib.positionEvent += lambda position: self._emit(self.positions, position)
        ib.updatePortfolioEvent += lambda item: self._emit(self.portfolio, item)
        ib.accountValueEvent += lambda value: self._emit(self.account_values, value)
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected

    @staticmethod
    def _emit(subject: Subject[Any], value: Any) -> None:
        # A failing observer must not break ib_async's event dispatch, nor the other observers.
        try:
            subject.on_next(value)
        except Exception:
            log.exception("an observer of an IB event failed; the stream goes on")

    def _on_error(self, req_id: int, code: int, message: str, _contract: Any = None) -> None:
        if code in (1100, 2110):  # connectivity between TWS and IB's servers lost
            log.warning("IB %d: %s", code, message)
        self._emit(self.errors, (req_id, code, message))

    def _on_disconnected(self) -> None:
        self.view_complete = False
        self._emit(self.connection, False)
        if not self._stopping:
            log.warning("IB connection to %s:%d lost; reconnecting", self.settings.host, self.settings.port)
            self._start_connector()

    # -- connection ----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.ib.isConnected()

    def start(self) -> None:
        """Start connecting in the background (and keep reconnecting until :meth:`stop`)."""
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
        if await self._connect_with_backoff():
            self.connects += 1
            self.last_error = None
            self.view_complete = self.ib.client.serverVersion() >= 150  # ib_async asks completed orders from 150
            log.info("IB connected to %s:%d as client %d (server version %s, accounts %s)",
                     self.settings.host, self.settings.port, self.settings.client_id,
                     self.ib.client.serverVersion(), ",".join(self.ib.wrapper.accounts))
            self._resubscribe()
            for hook in self.on_connected:
                try:
                    await hook()
                except Exception:
                    log.exception("re-sync after connecting failed")
            self._emit(self.connection, True)

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
        for key, contract in self.subscriptions.items():
            log.info("re-subscribing market data for %s", key)
            self.ib.reqMktData(contract)

    def require_connection(self) -> None:
        """Raise Unavailable unless connected."""
        if not self.connected:
            reason = f" ({self.last_error})" if self.last_error else ""
            raise Unavailable(f"not connected to IB at {self.settings.host}:{self.settings.port}{reason}")

    # -- requests ------------------------------------------------------------------
    def place_order(self, contract: Contract, order: Order) -> Trade:
        """Send a new order to IB; return its ``Trade`` (a :class:`PlacedTrade`), which ib_async keeps up to date.

        ``ib.placeOrder`` sends first, then builds the Trade, formats all of it
        into a log line (logging on or not) and emits ``newOrderEvent``. On
        this class of machine the broker, woken by the send, usually takes the
        CPU at once, so what the sender does afterwards waits for the broker,
        and the broker's answer waits for that. Here the Trade is registered
        with ib_async first (where the status reports will find it) and the
        send comes last; nothing is logged and no ``newOrderEvent`` emitted
        (the desk books its own orders). With the desk's and the RPC
        client's own sends last and :class:`PlacedTrade`'s short repr, 5-7%
        off the place_order round trip (``bench.trader_ab``). A send that
        fails leaves nothing registered. A modification (an order id ib_async knows) goes through
        ``ib.placeOrder``.
        """
        ib, wrapper = self.ib, self.ib.wrapper
        order_id = order.orderId or ib.client.getReqId()
        key = wrapper.orderKey(wrapper.clientId, order_id, order.permId)
        if key in wrapper.trades:
            return ib.placeOrder(contract, order)
        order.clientId, order.orderId = wrapper.clientId, order_id
        status = OrderStatus(orderId=order_id, status=OrderStatus.PendingSubmit)
        now = datetime.datetime.now(wrapper.defaultTimezone)
        trade = PlacedTrade(contract, order, status, [], [TradeLogEntry(now, status.status)])
        wrapper.trades[key] = trade
        try:
            ib.client.placeOrder(order_id, contract, order)
        except BaseException:
            del wrapper.trades[key]
            raise
        return trade

    async def contract_details(self, contract: Contract) -> list[ContractDetails]:
        """Return IB's matches for ``contract`` (cached by conid once qualified)."""
        if contract.conId and contract.conId in self._details:
            return [self._details[contract.conId]]
        self.require_connection()
        found = await self.ib.reqContractDetailsAsync(contract)
        for details in found:
            if details.contract is not None:
                self._details[details.contract.conId] = details
        return list(found)

    def subscribe(self, key: str, contract: Contract, owner: str = "user") -> Ticker:
        """Stream market data for ``contract`` on behalf of ``owner`` (kept across reconnects); return its Ticker.

        One stream per instrument, whoever asks: it lasts until every owner has
        let it go (:meth:`unsubscribe`). IB limits the streams open at once (100
        lines by default), so each is held only while someone wants it.
        """
        self.require_connection()
        self.owners.setdefault(key, set()).add(owner)
        if key not in self.subscriptions:
            self.subscriptions[key] = contract
            self._keys[contract.conId] = key
            return self.ib.reqMktData(contract)
        ticker = self.ib.ticker(contract)
        return ticker if ticker is not None else self.ib.reqMktData(contract)

    def unsubscribe(self, key: str, owner: str = "user") -> bool:
        """Let ``owner``'s stream of ``key`` go (it stops once no owner is left); return whether it had one."""
        owners = self.owners.get(key)
        if owners is None or owner not in owners:
            return False
        owners.discard(owner)
        if owners:
            return True
        del self.owners[key]
        contract = self.subscriptions.pop(key, None)
        if contract is None:
            return True
        self._keys.pop(contract.conId, None)
        if self.connected:
            self.ib.cancelMktData(contract)
        return True

    def subscribed_key(self, contract: Contract) -> str | None:
        """Return the key ``contract`` is subscribed under, or None."""
        return self._keys.get(contract.conId)

    def ticker(self, contract: Contract) -> Ticker | None:
        return self.ib.ticker(contract)

    async def snapshot(self, contract: Contract, timeout: float = 5.0) -> Ticker:
        """Return a one-off quote for ``contract`` (the live ticker when subscribed)."""
        self.require_connection()
        live = self.ib.ticker(contract)
        if live is not None and live.hasBidAsk():
            return live
        [ticker] = await asyncio.wait_for(self.ib.reqTickersAsync(contract), timeout)
        return ticker

    async def history(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                      what_to_show: str, use_rth: bool, timeout: float = 60.0) -> list[Any]:
        """Return historical bars, paced to IB's limit on historical requests."""
        self.require_connection()
        await self.history_pacer.acquire()
        bars = await self.ib.reqHistoricalDataAsync(
            contract, end, duration, bar_size, what_to_show, use_rth, formatDate=2, timeout=timeout)
        return list(bars)
