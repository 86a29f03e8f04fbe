"""The tws-sim server: an asyncio TCP listener, one Session per client, and the simulated world.

The world is the catalogue, the market generator (with the replay, when the
config names a file), the matching engine and the account; the server steps the market on its own task, feeds each quote to the
engine, reports the engine's events to the client that owns each order, and
pushes ticks, positions and account values to the sessions that asked for
them. The control operations (drop every connection, delay every response,
refuse the next N orders, pause the market) and the request log serve tests
and the service's RPC interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from trader.domain import SecType
from trader.sim import encoders as enc
from trader.sim import order_wire as ow
from trader.sim.account import Account
from trader.sim.catalogue import Catalogue, SimConfig, SimInstrument
from trader.sim.engine import MatchingEngine
from trader.sim.handlers import RequestHandlers
from trader.sim.market import MarketGenerator, MarketState
from trader.sim.msgids import In
from trader.sim.orders import CommissionSchedule, EngineEvent, OrderChanged, OrderError, OrderFilled
from trader.sim.replay import ReplaySource
from trader.sim.replay_data import FileReplayData
from trader.sim.session import Session

log = logging.getLogger(__name__)

__all__ = ["RequestRecord", "TwsSimServer"]


def wall_clock() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as received, for the request log."""

    time: datetime
    client_id: int | None
    message: str
    fields: tuple[str, ...]


class TwsSimServer:
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
        self.config = config
        self.host = host
        self.port = port
        self.clock = clock
        self.catalogue = Catalogue.from_config(config)
        self.market = MarketGenerator(self.catalogue, config.market.seed, config.market.tick_rate, clock())
        if config.replay is not None:
            self.market.drive(ReplaySource(FileReplayData(config.replay.file), self.catalogue, config.replay))
        self.engine = MatchingEngine(
            clock,
            CommissionSchedule(config.account.commission),
            account=config.account.id,
            commission_currency=config.account.currency,
        )
        self.account = Account(config.account.id, config.account.currency, config.account.cash)
        self.handlers = RequestHandlers(self)
        self.sessions: dict[int, Session] = {}
        self.connections: set[Session] = set()
        self.request_log: deque[RequestRecord] = deque(maxlen=request_log_size)
        self.response_delay = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._next_ids: dict[int, int] = {}
        self._day = clock().date()
        for state in self.market.states():
            self.engine.on_quote(state.instrument.conid, state.quote())

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
        session = Session(self, reader, writer)
        self.connections.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
        try:
            await session.run()
        finally:
            self.connections.discard(session)
            if task is not None:
                self._session_tasks.discard(task)

    # -- clients ---------------------------------------------------------------
    def register(self, session: Session, client_id: int) -> bool:
        """Claim ``client_id`` for ``session``; False if another live session holds it."""
        holder = self.sessions.get(client_id)
        if holder is not None and not holder.closed:
            return False
        self.sessions[client_id] = session
        session.client_id = client_id
        return True

    def unregister(self, session: Session) -> None:
        if session.client_id is not None and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            log.info("client %d disconnected", session.client_id)

    def next_order_id(self, client_id: int) -> int:
        """Return the next order id for ``client_id``: above every id it has used."""
        return max(self._next_ids.get(client_id, 1), self.engine.book.last_order_id(client_id) + 1)

    def reserve_ids(self, client_id: int, count: int) -> int:
        first = self.next_order_id(client_id)
        self._next_ids[client_id] = first
        return first

    def log_request(self, client_id: int | None, fields: list[str]) -> None:
        try:
            name = In(int(fields[0])).name if fields else "EMPTY"
        except ValueError:
            name = f"UNKNOWN({fields[0]!r})"
        self.request_log.append(RequestRecord(self.clock(), client_id, name, tuple(fields)))

    def handle(self, session: Session, msg_id: In, request: object) -> None:
        """Answer one parsed request."""
        self.handlers.handle(session, msg_id, request)

    # -- the world ---------------------------------------------------------------
    def mark(self, conid: int) -> Decimal | None:
        """Return the instrument's mid price, the account's mark."""
        try:
            return self.market.state(conid).mid
        except KeyError:
            return None

    def fx_rate(self, currency: str) -> Decimal | None:
        """Return how many base-currency units one unit of ``currency`` is worth, from the FX mids."""
        base = self.account.base
        if currency == base:
            return Decimal(1)
        for inst in self.catalogue:
            c = inst.contract
            if c.sec_type is not SecType.CASH:
                continue
            mid = self.mark(inst.conid)
            if mid is None or mid == 0:
                continue
            if c.symbol == currency and c.currency == base:
                return mid
            if c.symbol == base and c.currency == currency:
                return 1 / mid
        return None

    def instrument(self, conid: int) -> SimInstrument | None:
        return self.catalogue.get(conid)

    def market_step(self, now: datetime | None = None) -> list[MarketState]:
        """Move the market one step, match orders against it and push the ticks; return what moved."""
        now = now or self.clock()
        if now.date() != self._day:  # a new (UTC) trading day: DAY orders expire
            self._day = now.date()
            self.dispatch(self.engine.expire_day())
        moved = self.market.step(now)
        for state in moved:
            for quote in state.passed or (state.quote(),):
                self.dispatch(self.engine.on_quote(state.instrument.conid, quote))
        if moved:
            by_conid = {s.instrument.conid: s for s in moved}
            for session in list(self.sessions.values()):
                if session.market_data:
                    session.push_ticks(by_conid)
                for stream in list(session.bar_streams.values()):
                    if stream.conid in by_conid:
                        self.handlers.send_bar_update(session, stream)
        for session in list(self.sessions.values()):
            for rt in list(session.realtime_bars.values()):
                self.handlers.update_realtime_bar(session, rt, self.market.state(rt.conid))
        return moved

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
            for session in list(self.sessions.values()):
                if session.account_updates:
                    self.handlers.send_account(session)

    # -- engine events -------------------------------------------------------------
    def dispatch(self, events: Iterable[EngineEvent]) -> None:
        """Report engine events to the clients that own the orders; book fills in the account."""
        for event in events:
            if isinstance(event, OrderFilled):
                execution = event.execution
                realized = self.account.apply(execution)
                session = self.sessions.get(execution.client_id)
                if session is not None:
                    session.send(ow.exec_details(session.version, -1, execution))
                    session.send(ow.commission_report(execution, realized))
                self._after_fill(execution.instrument)
            elif isinstance(event, OrderChanged):
                session = self.sessions.get(event.order.client_id)
                if session is not None:
                    session.send(ow.open_order(session.version, event.order, self.account.id))
                    session.send(ow.order_status(event.order))
            elif isinstance(event, OrderError):
                session = self.sessions.get(event.client_id)
                if session is not None:
                    session.error(event.order_id, event.code, event.text)

    def _after_fill(self, inst: SimInstrument) -> None:
        holding = self.account.holdings.get(inst.conid)
        if holding is None:
            return
        for session in list(self.sessions.values()):
            if session.positions:
                session.send(enc.position(self.account.id, inst, holding.quantity, holding.avg_cost))
            if session.account_updates:
                self.handlers.send_account(session, only=inst.conid)

    # -- control -----------------------------------------------------------------
    def drop_all_connections(self) -> int:
        """Close every client connection (as a TWS restart would); return how many."""
        dropped = list(self.connections)
        for session in dropped:
            session.close()
        return len(dropped)

    def set_response_delay(self, seconds: float) -> None:
        """Delay every message sent from now on by ``seconds`` (0 to stop)."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        self.response_delay = seconds

    def reject_next_orders(self, count: int) -> None:
        """Refuse the next ``count`` new orders with IB's error 201."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.engine.reject_next = count

    def pause_market(self, paused: bool = True) -> None:
        """Freeze (or resume) the market: no quotes move, no resting order fills."""
        self.market.paused = paused

    def recent_requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the last ``limit`` requests received, oldest first."""
        records = list(self.request_log)[-limit:] if limit > 0 else []
        return [
            {"time": r.time, "client_id": r.client_id, "message": r.message, "fields": list(r.fields)}
            for r in records
        ]

    def status(self) -> dict[str, Any]:
        """Return a summary for the service's heartbeat and status RPC."""
        return {
            "port": self.port,
            "clients": sorted(self.sessions),
            "connections": len(self.connections),
            "market_paused": self.market.paused,
            "market_steps": self.market.steps,
            "open_orders": len(self.engine.open_orders()),
            "executions": len(self.engine.executions),
            "response_delay": self.response_delay,
            "reject_next": self.engine.reject_next,
            "replay": None if self.market.replay is None else self.market.replay.status(),
        }
