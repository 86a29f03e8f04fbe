"""One client connection to tws-sim: the handshake, the request loop and the client's subscriptions.

A session reads frames, parses each request for the negotiated version and
answers it the way TWS does. Anything wrong with one request (a bad field, an
unknown message id, an unknown contract) is logged and answered with IB's
error message; the session keeps serving and other clients never notice.
Only a stream that cannot be resynchronised (no ``API\\0`` greeting, an
oversized frame) or a clientId already in use (IB's error 326) ends it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from trader.errors import FrameTooLarge
from trader.sim import encoders as enc
from trader.sim import order_wire as ow
from trader.sim.msgids import ErrorCode, In, negotiate_version
from trader.sim.client_requests import REQUEST_PARSERS
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

if TYPE_CHECKING:
    from trader.sim.market import MarketState
    from trader.sim.server import TwsSimServer

log = logging.getLogger(__name__)

__all__ = ["BarStream", "MarketDataSubscription", "RealTimeBarStream", "Session"]

# Tick type ids: (live, delayed) for bid, ask, last, their sizes, volume and the session stats.
BID, ASK, LAST, BID_SIZE, ASK_SIZE, LAST_SIZE, VOLUME, HIGH, LOW, CLOSE, OPEN = range(11)
_TICK_IDS: dict[int, tuple[int, int]] = {
    BID: (1, 66), ASK: (2, 67), LAST: (4, 68), BID_SIZE: (0, 69), ASK_SIZE: (3, 70), LAST_SIZE: (5, 71),
    VOLUME: (8, 74), HIGH: (6, 72), LOW: (7, 73), CLOSE: (9, 75), OPEN: (14, 76),
}
LAST_TIMESTAMP = 45
MAX_WRITE_BUFFER = 32 * 1024 * 1024


@dataclass(slots=True)
class BarStream:
    """A keepUpToDate historical request: the forming bar is re-sent as it changes."""

    req_id: int
    conid: int
    bar_size: str
    what_to_show: str
    format_date: int
    last_sent: float = 0.0  # server-clock epoch seconds of the last update


@dataclass(slots=True)
class RealTimeBarStream:
    """A reqRealTimeBars stream: the 5-second bar being built from the market's steps."""

    req_id: int
    conid: int
    what_to_show: str
    start: int | None = None  # epoch seconds of the bar being built
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    price_sum: float = 0.0
    samples: int = 0
    volume_at_start: int = 0
    last_volume: int = 0
    trades: int = 0


@dataclass(slots=True)
class MarketDataSubscription:
    """A reqMktData stream: what was last sent, so only changes go out."""

    req_id: int
    conid: int
    delayed: bool
    sent: dict[str, object] = field(default_factory=dict)


class Session:
    """One connected client."""

    def __init__(self, server: TwsSimServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.version = 0
        self.client_id: int | None = None
        self.market_data_type = 1
        self.market_data: dict[int, MarketDataSubscription] = {}
        self.account_updates = False
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
        delay = self.server.response_delay
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._write, data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
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
        """Serve the connection until the client leaves or the session is closed."""
        try:
            greeting = await self.reader.readexactly(len(API_SIGNATURE))
            if greeting != API_SIGNATURE:
                log.warning("connection from %s did not start with API\\0 (%r): closing", self.peer, greeting)
                return
            splitter = FrameSplitter()
            while not self.closed:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                for payload in splitter.feed(chunk):
                    try:
                        self._on_frame(payload)
                    except Exception:  # a bug must cost one request, not the connection
                        log.exception("client %s: could not handle a frame of %d bytes", self.client_id, len(payload))
                        self.error(-1, ErrorCode.READ_ERROR, "Server error when reading an API client request.")
                    if self.closed:
                        break
            if splitter.pending:
                log.info("client %s at %s left in the middle of a message (%d bytes dropped)",
                         self.client_id, self.peer, splitter.pending)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.info("client %s at %s disconnected: %s", self.client_id, self.peer, exc or type(exc).__name__)
        except FrameTooLarge as exc:
            log.warning("client %s at %s: %s; closing", self.client_id, self.peer, exc)
            self.error(-1, ErrorCode.READ_ERROR, f"Server error when reading an API client request. {exc}")
        finally:
            self.close()
            self.server.unregister(self)

    def _on_frame(self, payload: bytes) -> None:
        fields = decode_fields(payload)
        if not self.version:
            self._handshake(fields)
            return
        self.server.log_request(self.client_id, fields)
        if not fields:
            self.error(-1, ErrorCode.READ_ERROR, "Server error when reading an API client request. empty message")
            return
        try:
            msg_id = In(int(fields[0]))
        except ValueError:
            log.warning("client %s sent unknown message id %r", self.client_id, fields[0])
            self.error(-1, ErrorCode.READ_ERROR,
                       f"Server error when reading an API client request. unknown message id {fields[0]!r}")
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
            self.server.handle(self, msg_id, request)
        except Exception:
            log.exception("client %s: %s failed: %s", self.client_id, msg_id.name, fields)
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
            log.warning("client at %s offers versions %d..%d, tws-sim speaks 157..178: closing", self.peer, low, high)
            self.close()
            return
        self.version = version
        log.info("client at %s: versions %d..%d%s -> %d", self.peer, low, high,
                 f" ({options})" if options else "", version)
        self.send(enc.handshake_reply(version, self.server.clock()))

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
