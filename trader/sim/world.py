"""The simulated world of tws-sim: catalogue, market, matching engine, account, and the clients in it.

The world is everything but the network: it steps the market, feeds each
quote to the engine, reports the engine's events to the client that owns each
order, pushes ticks, bars, positions and account values to the sessions that
asked for them, and answers every request through :class:`RequestHandlers`.
A :class:`~trader.sim.session.Session` needs nothing else, so a test can
drive one over a socket pair with no listener; :class:`~trader.sim.server.TwsSimServer`
adds the listener, the clock-driven loops and the connection limits.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from trader.domain import SecType
from trader.errors import ValidationError
from trader.peer_text import clip
from trader.sim import encoders as enc
from trader.sim import order_wire as ow
from trader.sim.account import Account
from trader.sim.catalogue import Catalogue, SimConfig, SimInstrument
from trader.sim.engine import MatchingEngine
from trader.sim.handlers import RequestHandlers
from trader.sim.market import MarketGenerator
from trader.sim.market_state import MarketState
from trader.sim.msgids import In
from trader.sim.orders import CommissionSchedule, EngineEvent, OrderChanged, OrderError, OrderFilled
from trader.sim.pacing import HistoryPacing
from trader.sim.replay import ReplaySource
from trader.sim.session import Session
from trader.sim.store_replay import open_replay_data

log = logging.getLogger(__name__)

__all__ = ["MAX_LOGGED_FIELD", "RequestRecord", "SimWorld", "checked_count", "checked_number", "wall_clock"]

# The request log keeps this much of each field and this many fields: what a
# test reads of a request, not what a client chose to send.
MAX_LOGGED_FIELD = 200
MAX_LOGGED_FIELDS = 200
MAX_RESPONSE_DELAY = 60.0
MAX_REJECT_NEXT = 1_000_000


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


class SimWorld:
    """The simulated account, market and catalogue, and the sessions trading in them."""

    def __init__(
        self,
        config: SimConfig,
        *,
        clock: Callable[[], datetime] = wall_clock,
        request_log_size: int = 10_000,
    ) -> None:
        self.config = config
        self.clock = clock
        self.catalogue = Catalogue.from_config(config, clock().date())  # the series listed today
        self.market = MarketGenerator(self.catalogue, config.market.seed, config.market.tick_rate, clock(),
                                      sessions=config.market.sessions)
        if config.replay is not None:
            self.market.drive(ReplaySource(open_replay_data(config.replay), self.catalogue, config.replay))
        self.market.paused = config.market.paused
        self.engine = MatchingEngine(
            clock,
            CommissionSchedule(config.account.commission),
            account=config.account.id,
            commission_currency=config.account.currency,
        )
        acct = config.account
        self.accounts = {i: Account(i, acct.currency, acct.cash) for i in acct.ids}  # every one the login manages
        self.account = self.accounts[acct.id]  # the default one: an order that names none goes there
        self.pacing = HistoryPacing(config.pacing, clock)
        self.handlers = RequestHandlers(self)
        self.sessions: dict[int, Session] = {}
        self.request_log: deque[RequestRecord] = deque(maxlen=request_log_size)
        self.response_delay = 0.0
        self._next_ids: dict[int, int] = {}
        self._day = clock().date()
        for state in self.market.states():
            self.engine.on_quote(state.instrument.conid, state.quote())

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
        """Forget ``session``'s client id: its connection has ended."""
        if session.client_id is not None and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            log.info("client %d disconnected", session.client_id)

    def next_order_id(self, client_id: int) -> int:
        """Return the next order id for ``client_id``: above every id it has used."""
        return max(self._next_ids.get(client_id, 1), self.engine.book.last_order_id(client_id) + 1)

    def reserve_ids(self, client_id: int, count: int) -> int:
        """Answer reqIds: return the next order id for ``client_id``."""
        first = self.next_order_id(client_id)
        self._next_ids[client_id] = first
        return first

    def log_request(self, client_id: int | None, fields: list[str]) -> None:
        """Record one request: at most ``MAX_LOGGED_FIELDS`` fields of ``MAX_LOGGED_FIELD`` characters each."""
        try:
            name = In(int(fields[0])).name if fields else "EMPTY"
        except ValueError:
            name = f"UNKNOWN({clip(fields[0], 40)})"
        kept = tuple(f if len(f) <= MAX_LOGGED_FIELD else clip(f, MAX_LOGGED_FIELD)
                     for f in fields[:MAX_LOGGED_FIELDS])
        self.request_log.append(RequestRecord(self.clock(), client_id, name, kept))

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
            if c.sec_type is not SecType.CASH or {c.symbol, c.currency} != {currency, base}:
                continue  # before the mark: asking a generated pair's starts its market
            mid = self.mark(inst.conid)
            if mid is None or mid == 0:
                continue
            if c.symbol == currency and c.currency == base:
                return mid
            if c.symbol == base and c.currency == currency:
                return 1 / mid
        return None

    def instrument(self, conid: int) -> SimInstrument | None:
        """Return the catalogue's instrument ``conid``, or None."""
        return self.catalogue.get(conid)

    def market_step(self, now: datetime | None = None) -> list[MarketState]:
        """Move the market one step, match orders against it and push the ticks; return what moved."""
        now = now or self.clock()
        if now.date() != self._day:  # a new (UTC) trading day: DAY orders expire, the series list their next contracts
            self._day = now.date()
            self.dispatch(self.engine.expire_day())
            for inst in self.catalogue.list_new(self.config, self._day):
                self.dispatch(self.engine.on_quote(inst.conid, self.market.add(inst, now).quote()))
        moved = [s for s in self.market.step(now) if not s.instrument.expired(now)]  # an expired one is not quoted
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

    def push_accounts(self) -> None:
        """Send account values and portfolio lines to every session subscribed to account updates."""
        for session in list(self.sessions.values()):
            if session.account_updates:
                self.handlers.send_account(session)

    # -- engine events -------------------------------------------------------------
    def dispatch(self, events: Iterable[EngineEvent]) -> None:
        """Report engine events to the clients that own the orders; book fills in the account."""
        for event in events:
            if isinstance(event, OrderFilled):
                execution = event.execution
                account = self.accounts.get(execution.account, self.account)
                realized = account.apply(execution)
                session = self.sessions.get(execution.client_id)
                if session is not None:
                    session.send(ow.exec_details(session.version, -1, execution))
                    session.send(ow.commission_report(execution, realized))
                self._after_fill(execution.instrument, account)
            elif isinstance(event, OrderChanged):
                session = self.sessions.get(event.order.client_id)
                if session is not None:
                    session.send(ow.open_order(session.version, event.order, self.account.id))
                    session.send(ow.order_status(event.order))
            elif isinstance(event, OrderError):
                session = self.sessions.get(event.client_id)
                if session is not None:
                    session.error(event.order_id, event.code, event.text)

    def _after_fill(self, inst: SimInstrument, account: Account) -> None:
        holding = account.holdings.get(inst.conid)
        if holding is None:
            return
        for session in list(self.sessions.values()):
            if session.positions:
                session.send(enc.position(account.id, inst, holding.quantity, holding.avg_cost))
            if session.account_updates and self.handlers.updates_account(session) is account:
                self.handlers.send_account(session, only=inst.conid)

    # -- control -----------------------------------------------------------------
    def set_response_delay(self, seconds: float) -> float:
        """Delay every message sent from now on by ``seconds`` (0 to stop); return the delay.

        Raises ValidationError unless ``seconds`` is a finite number from 0 to ``MAX_RESPONSE_DELAY``.
        """
        self.response_delay = checked_number("seconds", seconds, 0.0, MAX_RESPONSE_DELAY)
        return self.response_delay

    def reject_next_orders(self, count: int) -> int:
        """Refuse the next ``count`` new orders with IB's error 201; return the count.

        Raises ValidationError unless ``count`` is an integer from 0 to ``MAX_REJECT_NEXT``.
        """
        self.engine.reject_next = checked_count("count", count, MAX_REJECT_NEXT)
        return self.engine.reject_next

    def pause_market(self, paused: bool = True) -> bool:
        """Freeze (or resume) the market: no quotes move, no resting order fills; return ``paused``."""
        if not isinstance(paused, bool):
            raise ValidationError(f"paused must be true or false, got {clip(paused, 40)}", field="paused")
        self.market.paused = paused
        return paused

    def recent_requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the last ``limit`` requests received, oldest first (0 <= limit <= the log's size)."""
        limit = checked_count("limit", limit, self.request_log.maxlen or 0)
        records = list(self.request_log)[-limit:] if limit > 0 else []
        return [
            {"time": r.time, "client_id": r.client_id, "message": r.message, "fields": list(r.fields)}
            for r in records
        ]


def checked_number(name: str, value: object, low: float, high: float) -> float:
    """Return ``value`` as a float if it is a finite number from ``low`` to ``high``, else raise ValidationError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number, got {type(value).__name__} {clip(value, 40)}", field=name)
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationError(f"{name} must be a finite number from {low:g} to {high:g}, got {clip(value, 40)}",
                              field=name)
    return number


def checked_count(name: str, value: object, high: int) -> int:
    """Return ``value`` if it is an integer from 0 to ``high``; else raise ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, got {type(value).__name__} {clip(value, 40)}",
                              field=name)
    if not 0 <= value <= high:
        raise ValidationError(f"{name} must be from 0 to {high}, got {value}", field=name)
    return value
