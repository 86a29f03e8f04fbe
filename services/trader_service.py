"""The trader service: the one process that talks to the broker; orders, book, portfolio, risk, journal.

``python -m services.trader_service`` connects to the broker the settings name
(``broker:``; ``ib``: the IB API endpoint of ``ib:``, tws-sim by default) through
the :class:`~trader.brokers.base.Broker` seam, rebuilds its book from
the Redis journal, reconciles it with the broker, and serves the RPC methods
below on ``services.trader_service.rpc_port``. It publishes ``tick.ib.<key>``
for subscribed instruments, ``order.<event>``, ``fill`` and ``portfolio`` on
the bus, and beats DEGRADED while the broker connection is down.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from services.trader_api import TraderApi
from trader.brokers.factory import create_broker
from trader.config import Settings
from trader.data import MarketStore, open_store
from trader.data.universe_index import UniverseIndex
from trader.messaging.rpc import MethodRegistry
from trader.service.base import Service, main
from trader.trading.book import Book, rebuild
from trader.trading.closing import Closer
from trader.trading.desk import Desk
from trader.trading.history_cache import HistoryCache
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.kill_switch import KillSwitch
from trader.trading.reconcile import Resync
from trader.trading.recorder import Recorder
from trader.trading.risk import RiskGate
from trader.trading.subscriptions import Restorer, SavedSubscriptions
from trader.trading.trading_day import TradingDay

log = logging.getLogger(__name__)

PORTFOLIO_INTERVAL = 1.0


class TraderService(TraderApi, Service):
    """Owns the IB connection and everything that trades through it; its RPC methods are :class:`TraderApi`'s."""

    name = "trader_service"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.redis: aioredis.Redis | None = None
        self.journal: Journal | None = None
        self.book = Book()
        self.risk = RiskGate(settings.risk, lambda: datetime.now(UTC))
        self.adapter = create_broker(settings)
        self._store: MarketStore | None = None
        self._store_lock = threading.Lock()
        self.resolver = Resolver(self.adapter, universes=UniverseIndex(self.market_store))
        self.history_cache = HistoryCache(self.market_store)  # the store opened on the first request
        self.recorder: Recorder | None = None
        self.desk: Desk | None = None
        self.closer: Closer | None = None
        self.switch: KillSwitch | None = None
        self.trading_day: TradingDay | None = None
        self.resync: Resync | None = None
        self._portfolio_due = 0.0
        self._day_task: asyncio.Task[None] | None = None
        self._quotes_task: asyncio.Task[None] | None = None
        self.saved: SavedSubscriptions | None = None  # the user's subscriptions, streamed again after a restart
        self.restorer: Restorer | None = None

    def market_store(self) -> MarketStore:
        """Return the market store, opened on first use, once (LMDB allows one open per path in a process)."""
        with self._store_lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    def register_methods(self, registry: MethodRegistry) -> None:
        for name in ("account", "positions", "portfolio", "orders", "trades", "place_order", "what_if", "modify_order",
                     "cancel_order", "cancel_all", "close_positions", "snapshot", "snapshots", "resolve", "subscribe", "unsubscribe",
                     "subscriptions", "history", "kill_switch", "reconnect", "reconcile"):
            registry.register(name, getattr(self, name), urgent=name == "kill_switch")

    # -- lifecycle -------------------------------------------------------------------
    async def on_start(self) -> None:
        r = self.settings.redis
        self.redis = aioredis.Redis(host=r.host, port=r.port,
                                    password=r.password.get_secret_value() if r.password else None)
        self.journal = Journal(self.redis, self.settings.trading.journal_stream)
        self.saved = saved = SavedSubscriptions(self.redis, self.settings.trading.subscriptions_key)
        await rebuild(self.journal, self.book, risk=self.risk)  # the book, and the kill switch as it was
        self.recorder = Recorder(self.journal, self._publish)
        self.recorder.start()
        self.desk = Desk(self.adapter, self.resolver, self.book, self.recorder, self.risk,
                         account=self.adapter.account)
        self.wire(self.desk, self.journal)
        self.restorer = Restorer(saved, self.adapter, self.resolver)
        assert self.trading_day is not None and self.resync is not None
        self.adapter.on_connected.append(self.resync.run)
        self.adapter.connection.subscribe(self._on_connection)
        self.adapter.ticks.subscribe(self._on_ticks)
        self.adapter.portfolio_updates.subscribe(lambda _item: self._portfolio_changed())
        self.adapter.start()
        if self.resolver.universes is not None:  # open the store and load the universes off the loop, now
            self.resolver.universes.preload()
        self._day_task = asyncio.get_running_loop().create_task(self.trading_day.loop(), name="trading-day")
        self._quotes_task = asyncio.get_running_loop().create_task(self._quotes_loop(), name="idle-quotes")
        if not await self.adapter.wait_connected(self.settings.trading.connect_timeout):
            why = "not connected to IB" if not self.adapter.connected else \
                f"connected, re-syncing with the broker ({self.resync.error or 'in progress'})"
            asyncio.get_running_loop().call_soon(self.set_degraded, why)

    def wire(self, desk: Desk, journal: Journal) -> None:
        """Build what acts on the desk: the closer, the kill switch, the trading day and the re-sync."""
        self.closer = Closer(desk)
        self.switch = KillSwitch(desk)
        self.trading_day = TradingDay(self.settings, desk, journal)
        self.resync = Resync(desk, self.switch, self.trading_day, self.set_degraded)

    async def on_stop(self) -> None:
        for task in (self._day_task, self._quotes_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.restorer is not None:
            await self.restorer.stop()
        await self.adapter.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.journal is not None:
            await self.journal.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def _quotes_loop(self) -> None:
        idle = self.settings.trading.quote_idle_release
        while True:
            await asyncio.sleep(min(60.0, max(0.25, idle / 4)))
            if self.desk is None:
                continue
            for key in self.desk.release_idle_quotes(idle):
                log.info("market data for %s released: no order for %.0f s", key, idle)

    def _on_connection(self, connected: bool) -> None:
        if not connected and self.desk is not None:
            self.desk.synced = False
        if connected:
            self.set_running("connected to IB")
            if self.restorer is not None:  # after each (re)connect: the saved streams
                self.restorer.connected()
        else:
            self.set_degraded("IB connection lost; reconnecting")

    def status_info(self) -> dict[str, Any]:
        return {
            "connected": self.adapter.connected,
            # Reconciled since the last (re)connect: orders are taken. Ready = RUNNING, connected and synced.
            "synced": self.desk is not None and self.desk.synced,
            "resync_error": self.resync.error if self.resync is not None else None,
            **self.adapter.describe(),
            "accounts": self.adapter.accounts(),
            "connects": self.adapter.connects,
            "last_error": self.adapter.last_error,
            "orders": len(self.book),
            "open_orders": self.book.open_count(),
            "fills": self.book.fill_count(),
            "subscriptions": sorted(self.adapter.subscriptions()),
            "subscriptions_failed": dict(self.saved.errors) if self.saved is not None else {},
            "kill_switch": self.risk.kill_switch_engaged,
            "kill_switch_reason": self.risk.kill_switch_reason,
            "journal_pending": self.recorder.pending if self.recorder else 0,
            "live": self.settings.trading.live,
            "differences": len(self.resync.differences) if self.resync is not None else 0,
            "trading_day": self.trading_day.day if self.trading_day is not None else None,
            "daily_pnl": self.desk.exposure().daily_pnl if self.desk is not None and self.desk.synced else None,
        }

    # -- bus -------------------------------------------------------------------------
    def _publish(self, topic: str, payload: Any) -> None:
        if self.publisher is not None:
            self.publisher.publish(topic, payload)

    def _on_ticks(self, ticks: list[dict[str, Any]]) -> None:
        for tick in ticks:
            self._publish(f"tick.ib.{tick['instrument']}", tick)

    def _portfolio_changed(self) -> None:
        now = time.monotonic()
        if now < self._portfolio_due:
            return
        self._portfolio_due = now + PORTFOLIO_INTERVAL
        asyncio.get_running_loop().create_task(self._snapshot())

    async def _snapshot(self) -> None:
        await asyncio.sleep(PORTFOLIO_INTERVAL / 2)  # let the rest of the burst of updates land
        items = self.portfolio()
        self._publish("portfolio", items)
        if self.journal is not None:
            try:
                await self.journal.save_snapshot(self.settings.trading.snapshot_key,
                                                 {"time": datetime.now(UTC), "portfolio": items})
            except Exception:
                log.exception("saving the portfolio snapshot failed")

    # -- RPC: the connection ------------------------------------------------------------
    async def reconnect(self) -> dict[str, Any]:
        """Drop the IB connection and make it again; return the status once re-synced (or after 15 s)."""
        await self.adapter.reconnect()  # the connector task runs from here: wait_connected waits for it
        await self.adapter.wait_connected(15)
        return self.status_info()

    async def reconcile(self) -> list[dict[str, Any]]:
        """Reconcile the book with the broker now; return the differences."""
        self.adapter.require_connection()
        assert self.resync is not None
        await self.resync.run(retry=False)
        return self.resync.differences


if __name__ == "__main__":
    sys.exit(main(TraderService))
