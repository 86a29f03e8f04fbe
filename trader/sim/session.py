"""One client connection to tws-sim: the handshake, the request loop and the client's subscriptions.

A session reads frames, parses each request for the negotiated version and
answers it the way TWS does. Anything wrong with one request (a bad field, an
unknown message id, an unknown contract) is logged and answered with IB's
error message; the session keeps serving and other clients never notice.
Only a stream that cannot be resynchronised (no ``API\\0`` greeting, an
oversized frame) or a clientId already in use (IB's error 326) ends it, and
so does a client that breaks the :class:`~trader.sim.limits.ConnectionLimits`:
no startApi within the handshake timeout, a frame begun and not finished
within the frame timeout, more than its share of buffered bytes.

A session knows its host only as a :class:`SessionHost` (the simulated world
answers every request), so it runs without a server: over any pair of asyncio
streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from trader.errors import FrameTooLarge
from trader.peer_text import clip
from trader.sim import encoders as enc
from trader.sim import order_wire as ow
from trader.sim.client_requests import REQUEST_PARSERS
from trader.sim.limits import BufferBudget, ConnectionLimits
from trader.sim.market_state import MarketState
from trader.sim.msgids import ErrorCode, In, negotiate_version
from trader.sim.subscriptions import BarStream, MarketDataSubscription, RealTimeBarStream
from trader.sim.wire import (
    API_SIGNATURE,
    Field,
    FieldReader,
    FrameSplitter,
    WireError,
    decode_fields,
    encode_message,
    parse_version_range,
)

log = logging.getLogger(__name__)

__all__ = ["Session", "SessionHost"]

# Tick type ids: (live, delayed) for bid, ask, last, their sizes, volume and the session stats.
BID, ASK, LAST, BID_SIZE, ASK_SIZE, LAST_SIZE, VOLUME, HIGH, LOW, CLOSE, OPEN = range(11)
_TICK_IDS: dict[int, tuple[int, int]] = {
    BID: (1, 66), ASK: (2, 67), LAST: (4, 68), BID_SIZE: (0, 69), ASK_SIZE: (3, 70), LAST_SIZE: (5, 71),
    VOLUME: (8, 74), HIGH: (6, 72), LOW: (7, 73), CLOSE: (9, 75), OPEN: (14, 76),
}
LAST_TIMESTAMP = 45
T = TypeVar("T")


class SessionHost(Protocol):
    """What a session needs of whoever answers its requests (the simulated world)."""

    response_delay: float

    def clock(self) -> datetime:
        """Return the current time."""

    def log_request(self, client_id: int | None, fields: list[str]) -> None:
        """Record one request as received."""

    def handle(self, session: Session, msg_id: In, request: object) -> None:
        """Answer one parsed request on ``session``."""

    def unregister(self, session: Session) -> None:
        """Forget ``session``: its connection has ended."""


class Session:
    """One connected client."""

    def __init__(
        self,
        host: SessionHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: ConnectionLimits | None = None,
        budget: BufferBudget | None = None,
    ) -> None:
        self.host = host
        self.reader = reader
        self.writer = writer
        self.limits = limits or ConnectionLimits()
        self.budget = budget or BufferBudget(self.limits.max_buffered_bytes)
        self.budget_exceeded = False
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.version = 0
        self.client_id: int | None = None
        self.market_data_type = 1
        self.market_data: dict[int, MarketDataSubscription] = {}
        self.account_updates = False
        self.account_updates_of = ""  # the account reqAccountUpdates named (empty: the default one)
        self.positions = False
        self.account_summaries: set[int] = set()
        self.account_multi: set[int] = set()
        self.bar_streams: dict[int, BarStream] = {}
        self.realtime_bars: dict[int, RealTimeBarStream] = {}
        self.closed = False

    # -- output ----------------------------------------------------------------
    def send(self, fields: list[Field]) -> None:
        """Frame and send one message (after the server's configured delay, if any)."""
        if self.closed:
            return
        data = encode_message(fields)
        delay = self.host.response_delay
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._write, data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > self.limits.max_write_buffer:
            log.warning("client %s at %s does not read its messages: disconnecting", self.client_id, self.peer)
            self.close()

    def error(self, req_id: int, code: int, text: str) -> None:
        """Send IB's errorMsg."""
        self.send(enc.error(self.version, req_id, code, text))

    def close(self) -> None:
        """Close the connection; the run loop ends and unregisters the session."""
        if not self.closed:
            self.closed = True
            self.writer.close()

    # -- run -------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until the client leaves, breaks a limit or the session is closed."""
        loop = asyncio.get_running_loop()
        handshake_deadline = loop.time() + self.limits.handshake_timeout
        try:
            greeting = await _before(self.reader.readexactly(len(API_SIGNATURE)), handshake_deadline)
            if greeting != API_SIGNATURE:
                log.warning("connection from %s did not start with API\\0 (%r): closing", self.peer, greeting)
                return
            splitter = FrameSplitter(self.limits.max_frame_bytes)
            frame_deadline: float | None = None
            while not self.closed:
                deadline = handshake_deadline if self.client_id is None else frame_deadline
                chunk = await _before(self.reader.read(65536), deadline)
                if not chunk:
                    break
                payloads = splitter.feed(chunk)
                for payload in payloads:
                    try:
                        self._on_frame(payload)
                    except Exception:  # a bug must cost one request, not the connection
                        log.exception("client %s: could not handle a frame of %d bytes", self.client_id, len(payload))
                        self.error(-1, ErrorCode.READ_ERROR, "Server error when reading an API client request.")
                    if self.closed:
                        break
                if not splitter.pending:
                    frame_deadline = None
                elif payloads or frame_deadline is None:  # a new frame has begun
                    frame_deadline = loop.time() + self.limits.frame_timeout
                self._hold(splitter.pending)
            if splitter.pending and not self.budget_exceeded:
                log.info("client %s at %s left in the middle of a message (%d bytes dropped)",
                         self.client_id, self.peer, splitter.pending)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.info("client %s at %s disconnected: %s", self.client_id, self.peer, exc or type(exc).__name__)
        except TimeoutError:
            what = "did not send startApi" if self.client_id is None else "did not finish a frame"
            limit = self.limits.handshake_timeout if self.client_id is None else self.limits.frame_timeout
            log.warning("client %s at %s %s within %gs: closing", self.client_id, self.peer, what, limit)
        except FrameTooLarge as exc:
            log.warning("client %s at %s: %s; closing", self.client_id, self.peer, exc)
            self.error(-1, ErrorCode.READ_ERROR, f"Server error when reading an API client request. {exc}")
        finally:
            self.budget.release(self)
            self.close()
            self.host.unregister(self)

    def _hold(self, pending: int) -> None:
        """Count the bytes of an unfinished frame against the budget; drop the largest holder if it is spent."""
        hog = self.budget.hold(self, pending)
        if isinstance(hog, Session):
            log.warning("buffered bytes over %d: dropping client %s at %s, which holds %d",
                        self.budget.limit, hog.client_id, hog.peer, self.budget.held(hog))
            hog.budget_exceeded = True
            self.budget.release(hog)
            hog.close()

    def _on_frame(self, payload: bytes) -> None:
        fields = decode_fields(payload)
        if not self.version:
            self._handshake(fields)
            return
        self.host.log_request(self.client_id, fields)
        if not fields:
            self.error(-1, ErrorCode.READ_ERROR, "Server error when reading an API client request. empty message")
            return
        try:
            msg_id = In(int(fields[0]))
        except ValueError:
            log.warning("client %s sent unknown message id %s", self.client_id, clip(fields[0]))
            self.error(-1, ErrorCode.READ_ERROR,
                       f"Server error when reading an API client request. unknown message id {clip(fields[0])}")
            return
        reader = FieldReader(fields, msg_id.name, start=1)
        try:
            if msg_id is In.PLACE_ORDER:
                request: object = ow.parse_place_order(reader, self.version)
            else:
                request = REQUEST_PARSERS[msg_id](reader, self.version)
                reader.expect_end()
        except (WireError, KeyError) as exc:
            req_id = _guess_req_id(msg_id, fields)
            log.warning("client %s: bad %s: %s", self.client_id, msg_id.name, exc)
            self.error(req_id, ErrorCode.READ_ERROR, f"Server error when reading an API client request. {exc}")
            return
        if self.client_id is None and msg_id is not In.START_API:
            self.error(-1, ErrorCode.NOT_CONNECTED, "Not connected: send startApi first")
            return
        try:
            self.host.handle(self, msg_id, request)
        except Exception:
            log.exception("client %s: %s failed: %s", self.client_id, msg_id.name, clip(fields))
            self.error(_guess_req_id(msg_id, fields), ErrorCode.VALIDATION_ERROR,
                       f"Error validating request:-'{msg_id.name}' : cause - internal error in tws-sim")

    def _handshake(self, fields: list[str]) -> None:
        try:
            low, high, options = parse_version_range(fields[0] if fields else "")
        except WireError as exc:
            log.warning("bad handshake from %s: %s", self.peer, exc)
            self.close()
            return
        version = negotiate_version(low, high)
        if version is None:
            log.warning("client at %s offers versions %d..%d, tws-sim speaks 157..178 but not 158: closing",
                        self.peer, low, high)
            self.close()
            return
        self.version = version
        log.info("client at %s: versions %d..%d%s -> %d", self.peer, low, high,
                 f" ({clip(options)})" if options else "", version)
        self.send(enc.handshake_reply(version, self.host.clock()))

    # -- market data -------------------------------------------------------------
    def push_ticks(self, states: dict[int, MarketState]) -> None:
        """Send what changed in the watched instruments since the last push."""
        for sub in list(self.market_data.values()):
            state = states.get(sub.conid)
            if state is not None:
                self.send_ticks(sub, state)

    def send_ticks(self, sub: MarketDataSubscription, state: MarketState) -> None:
        """Send the subscription's ticks that differ from what it was last sent."""
        delayed = 1 if sub.delayed else 0
        sent = sub.sent

        def changed(name: str, value: object) -> bool:
            if sent.get(name) == value:
                return False
            sent[name] = value
            return True

        req = sub.req_id
        bid_changed = changed("bid", (state.bid, state.bid_size))
        if bid_changed:
            self.send(enc.tick_price(req, _TICK_IDS[BID][delayed], float(state.bid), Decimal(state.bid_size)))
            self.send(enc.tick_size(req, _TICK_IDS[BID_SIZE][delayed], Decimal(state.bid_size)))
        if changed("ask", (state.ask, state.ask_size)):
            self.send(enc.tick_price(req, _TICK_IDS[ASK][delayed], float(state.ask), Decimal(state.ask_size)))
            self.send(enc.tick_size(req, _TICK_IDS[ASK_SIZE][delayed], Decimal(state.ask_size)))
        if state.last is not None and changed("last", (state.last, state.last_size, state.volume)):
            self.send(enc.tick_price(req, _TICK_IDS[LAST][delayed], float(state.last), Decimal(state.last_size)))
            self.send(enc.tick_size(req, _TICK_IDS[LAST_SIZE][delayed], Decimal(state.last_size)))
            if state.time is not None:
                self.send(enc.tick_string(req, LAST_TIMESTAMP, str(int(state.time.timestamp()))))
        if changed("volume", state.volume):
            self.send(enc.tick_size(req, _TICK_IDS[VOLUME][delayed], Decimal(state.volume)))
        for name, tick, value in (("high", HIGH, state.high), ("low", LOW, state.low),
                                  ("close", CLOSE, state.close), ("open", OPEN, state.open)):
            if value is not None and changed(name, value):
                self.send(enc.tick_price(req, _TICK_IDS[tick][delayed], float(value), 0))


# Where the request id sits in requests that have one (after the message id and,
# for most, a version field), so a malformed request's error names its request.
_REQ_ID_INDEX: dict[In, int] = {
    In.PLACE_ORDER: 1, In.REQ_HISTORICAL_DATA: 1, In.REQ_MATCHING_SYMBOLS: 1, In.REQ_HEAD_TIMESTAMP: 1,
    In.REQ_MKT_DATA: 2, In.CANCEL_MKT_DATA: 2, In.CANCEL_ORDER: 2, In.REQ_EXECUTIONS: 2,
    In.REQ_CONTRACT_DATA: 2, In.CANCEL_HISTORICAL_DATA: 2, In.REQ_ACCOUNT_SUMMARY: 2,
    In.CANCEL_ACCOUNT_SUMMARY: 2, In.REQ_ACCOUNT_UPDATES_MULTI: 2, In.CANCEL_ACCOUNT_UPDATES_MULTI: 2,
}


def _guess_req_id(msg_id: In, fields: list[str]) -> int:
    """Return the request id of a malformed request when it can be read, else -1."""
    index = _REQ_ID_INDEX.get(msg_id)
    if index is None or index >= len(fields):
        return -1
    try:
        return int(fields[index])
    except ValueError:
        return -1


async def _before(read: Awaitable[T], deadline: float | None) -> T:
    """Await ``read``; raise TimeoutError if it has not finished by ``deadline`` (loop time; None: no deadline)."""
    async with asyncio.timeout_at(deadline):  # a timer, not a task per read as wait_for would make
        return await read
