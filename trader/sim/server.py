"""The tws-sim server: an asyncio TCP listener over the simulated world, with its connection limits.

:class:`TwsSimServer` is a :class:`~trader.sim.world.SimWorld` that listens:
one :class:`~trader.sim.session.Session` per connection, the market stepped
and the account pushed on the wall clock, and the fault controls for tests
and the service's RPC interface (drop every connection, delay every
response, refuse the next N orders, pause the market, the request log).

Every connection is held to the config's
:class:`~trader.sim.limits.ConnectionLimits`. At ``max_connections`` a new
connection displaces the oldest one that has not yet sent startApi (a real
client sends it within milliseconds of connecting, so a flood of idle or
half-open connections cannot lock one out); if every connection has started,
the new one is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from trader.sim.catalogue import SimConfig
from trader.sim.limits import BufferBudget
from trader.sim.session import Session
from trader.sim.world import RequestRecord, SimWorld, wall_clock

log = logging.getLogger(__name__)

__all__ = ["RequestRecord", "TwsSimServer"]


class TwsSimServer(SimWorld):
    """A simulated TWS listening on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        config: SimConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 7497,
        clock: Callable[[], datetime] = wall_clock,
        request_log_size: int = 10_000,
    ) -> None:
        super().__init__(config, clock=clock, request_log_size=request_log_size)
        self.host = host
        self.port = port
        self.limits = config.connections
        self.budget = BufferBudget(self.limits.max_buffered_bytes)
        self.connections: dict[Session, None] = {}  # insertion-ordered: the oldest first
        self.refused = 0
        self.displaced = 0
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._session_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> int:
        """Listen and start the market; return the bound port."""
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._market_loop()), loop.create_task(self._account_loop())]
        log.info("tws-sim listening on %s:%d (%d instruments)", self.host, self.port, len(self.catalogue))
        replay = self.market.replay
        if replay is not None:
            log.info("replaying %s: %d rows for %d instruments at %gx", replay.data.name, replay.rows,
                     len(replay.conids), replay.speed)
        return self.port

    async def stop(self) -> None:
        """Close every connection and stop listening; safe to call twice."""
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        self.drop_all_connections()
        pending = [*self._tasks, *self._session_tasks]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._make_room():
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood logs a few lines
                log.warning("%d connections, the limit, have all started: refusing a new one (%d refused so far)",
                            len(self.connections), self.refused)
            writer.close()
            return
        session = Session(self, reader, writer, self.limits, self.budget)
        self.connections[session] = None
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
        try:
            await session.run()
        finally:
            self.connections.pop(session, None)
            if task is not None:
                self._session_tasks.discard(task)

    def _make_room(self) -> bool:
        """Return True if a new connection may open, displacing the oldest unstarted one if need be."""
        if len(self.connections) < self.limits.max_connections:
            return True
        for session in self.connections:
            if session.client_id is None:
                self.displaced += 1
                if self.displaced & (self.displaced - 1) == 0:
                    log.warning("at the limit of %d connections: closing %s, which has not sent startApi "
                                "(%d displaced so far)", self.limits.max_connections, session.peer, self.displaced)
                session.close()
                del self.connections[session]
                return True
        return False

    async def _market_loop(self) -> None:
        interval = self.market.step_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                self.market_step()
            except Exception:
                log.exception("market step failed; the market keeps running")

    async def _account_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.market.account_update_interval)
            self.push_accounts()

    # -- control -----------------------------------------------------------------
    def drop_all_connections(self) -> int:
        """Close every client connection (as a TWS restart would); return how many."""
        dropped = list(self.connections)
        for session in dropped:
            session.close()
        return len(dropped)

    def status(self) -> dict[str, Any]:
        """Return a summary for the service's heartbeat and status RPC."""
        return {
            "port": self.port,
            "clients": sorted(self.sessions),
            "connections": len(self.connections),
            "refused_connections": self.refused,
            "displaced_connections": self.displaced,
            "buffered_bytes": self.budget.used,
            "market_paused": self.market.paused,
            "market_steps": self.market.steps,
            "open_orders": len(self.engine.open_orders()),
            "executions": len(self.engine.executions),
            "response_delay": self.response_delay,
            "history_pacing_violations": self.pacing.violations if self.pacing.config.enabled else None,
            "reject_next": self.engine.reject_next,
            "replay": None if self.market.replay is None else self.market.replay.status(),
        }
