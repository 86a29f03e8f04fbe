"""The IB connection's lifecycle: connect with backoff and jitter, a watchdog, reconnects, the re-sync hooks.

:class:`IbConnection` owns the ``ib_async.IB`` object's connection, the base of
:class:`~trader.brokers.ib.adapter.IbAdapter`. It connects with exponential
backoff and jitter (a start-up request of ib_async's that fails, completed
orders or executions say, fails the connect: ``view_complete`` holds only
once all came), and a watchdog notices a dead connection either from
ib_async's ``disconnectedEvent`` or from a periodic ``reqCurrentTime`` that
gets no answer. After every (re)connect it re-requests what was streamed
(:meth:`IbConnection._resubscribe`) and then calls the ``on_connected``
hooks, where the trader service re-syncs orders, positions and executions;
only once they all succeeded is the connection reported up (``connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ib_async import IB, RequestError
from reactivex.subject import Subject

from trader.config import IbSettings, TradingSettings
from trader.errors import Unavailable
from trader.retry import RetryPolicy

log = logging.getLogger(__name__)

__all__ = ["WATCHDOG_INTERVAL", "IbConnection"]

WATCHDOG_INTERVAL = 5.0
_CONNECT_ERRORS = (OSError, TimeoutError, ConnectionError, RequestError)  # a connect that failed: made again


class IbConnection:
    """The IB API connection: made, watched and made again until :meth:`stop`."""

    def __init__(self, ib_settings: IbSettings, trading: TradingSettings, ib: IB | None = None) -> None:
        """Connect with ``ib_settings`` (to ``ib``, default: a new ``IB``), paced and timed by ``trading``."""
        self.settings = ib_settings
        self.trading = trading
        self.ib = ib or IB()
        self.ib.RaiseRequestErrors = True
        self.ib.client.MaxRequests = trading.ib_max_requests
        # ib_async documents RequestsInterval as float seconds; its int default (1) makes mypy infer int.
        self.ib.client.RequestsInterval = trading.ib_requests_interval  # type: ignore[assignment]
        self.connection: Subject[bool] = Subject()
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self.connects = 0
        self.last_error: str | None = None
        # Whether this connection fetched the completed orders and the executions (see _connect_loop):
        # only then is an order IB does not report proof that it never reached IB.
        self.view_complete = False
        self._stopping = False
        self._connector: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.ib.disconnectedEvent += self._on_disconnected

    @staticmethod
    def _emit(subject: Subject[Any], value: Any) -> None:
        # A failing observer must not break ib_async's event dispatch, nor the other observers.
        try:
            subject.on_next(value)
        except Exception:
            log.exception("an observer of an IB event failed; the stream goes on")

    def _resubscribe(self) -> None:
        """Request again what the connection streamed before it was lost (the adapter's market data)."""

    def _forget_session(self) -> None:
        """Forget what only the lost connection held (the adapter's order handles)."""

    def _on_disconnected(self) -> None:
        self.view_complete = False
        self._forget_session()
        self._emit(self.connection, False)
        if not self._stopping:
            log.warning("IB connection to %s:%d lost; reconnecting", self.settings.host, self.settings.port)
            self._start_connector()

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

    def require_connection(self) -> None:
        """Raise Unavailable unless connected."""
        if not self.connected:
            reason = f" ({self.last_error})" if self.last_error else ""
            raise Unavailable(f"not connected to IB at {self.settings.host}:{self.settings.port}{reason}")

    async def current_time(self) -> datetime:
        """Return IB's clock."""
        self.require_connection()
        return await self.ib.reqCurrentTimeAsync()
