"""ZMTP 3.1 (NULL security) on asyncio, no threads: the wire protocol and one connection.

The sockets built on it, a ROUTER server and a reconnecting DEALER, are in
:mod:`trader.messaging.zmtp_sockets`.

Why: with pyzmq, libzmq moves every message through its own I/O threads, so an
RPC round trip wakes four threads on top of the two application loops (client
app -> client I/O thread -> server I/O thread -> server app, and back). On our
VMs each wake-up costs ~150 µs. This module speaks the ZeroMQ wire protocol
(rfc.zeromq.org specs 23 and 37) directly from ``asyncio.Protocol`` callbacks on
the service's own loop, so a round trip costs only the two unavoidable wake-ups.
It interoperates with libzmq DEALER, REQ and ROUTER sockets.

The wire format is :mod:`trader.messaging.zmtp_wire`'s. PING is answered with
PONG, and each side sends PING every ``heartbeat_ivl`` (RFC 37): a peer heard
from for none of ``heartbeat_timeout`` is dead and its connection dropped.
Every limit on peer input (greeting, message size, frame count, handshake
time, a message not completed within ``read_timeout``, the bytes of unfinished
messages held across connections; see :mod:`trader.messaging.zmtp_limits`)
closes only the offending connection, never the server. What is logged about
a refused peer is rate-limited per kind (:mod:`trader.peer_text`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from trader.messaging.zmtp_limits import KEEPALIVE, Budget, Limits, Timeouts, keepalive
from trader.messaging.zmtp_wire import (
    GREETING,
    MAX_COMMAND,
    command,
    encode,
    greeting_problem,
    parse_endpoint,
    parse_properties,
    ping,
    ready_command,
)
from trader.peer_text import LogThrottle, clip

__all__ = ["DEFAULT_MAX_BUFFER", "KEEPALIVE", "MAX_FRAMES", "Budget", "Connection", "Limits", "Timeouts", "encode",
           "parse_endpoint"]

log = logging.getLogger(__name__)
_throttle = LogThrottle(log)
_monotonic = time.monotonic

DEFAULT_MAX_BUFFER = 16 * 2**20
MAX_FRAMES = 64
_HANDSHAKE, _READY_WAIT, _OPEN = 0, 1, 2


class Connection(asyncio.Protocol):
    """One ZMTP connection: handshake, framing, limits. Subclasses route the events."""

    _SOCKET_TYPE = b""
    _ACCEPTS: frozenset[bytes] = frozenset()

    def __init__(self, owner: Limits, identity: bytes | None) -> None:
        self._identity = identity
        self._max_message = owner.max_message_bytes
        self._max_buffer = owner.max_buffer_bytes
        self._handshake_timeout = owner.handshake_timeout
        self._timeouts = owner.timeouts
        self._budget = owner.budget
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._buf = bytearray()
        self._state = _HANDSHAKE
        self._closed = False
        self._frames: list[bytes] = []
        self._msg_bytes = 0
        self._held = 0  # len(_buf) + _msg_bytes, as counted in the budget
        self._heard = 0.0  # monotonic time of the last bytes received
        self._active = 0.0  # ... of the last complete message received (or of the connection)
        self._partial_since = 0.0  # ... when the unfinished message now held began; 0: none
        self._paused = False  # reading paused: our replies to the peer are backed up (see zmtp_sockets.Peer)
        self._backed_up = 0  # the write buffer's size when last checked while paused ...
        self._progress = 0.0  # ... and when it last shrank
        self._pinged = 0.0
        self.socket_type = ""
        self.address = "?"

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; uvloop's do not subclass asyncio.Transport, so no isinstance check
        self._transport = cast("asyncio.Transport", transport)
        keepalive(transport.get_extra_info("socket"))
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.address = f"{peer[0]}:{peer[1]}"
        self._heard = self._active = _monotonic()
        self._timer = asyncio.get_running_loop().call_later(self._handshake_timeout, self._expired)
        self._transport.write(GREETING)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release()
        self._lost()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._heard = _monotonic()
        buf = self._buf
        try:
            if not buf and self._state == _OPEN:  # fast path: parse the chunk itself, no copy
                pos = self._parse(data)
                if pos < len(data) and not self._closed:
                    buf += data[pos:]
            else:
                buf += data
                if self._state == _HANDSHAKE and not self._greeting():
                    return
                pos = self._parse(buf)
                if pos and not self._closed:
                    del buf[:pos]
            held = len(buf) + self._msg_bytes
            if held != self._held and not self._closed:
                self._hold(held)
            elif held and not self._partial_since:  # a message completed, and the next one began
                self._partial_since = self._heard
        except Exception:  # defensive: bad input must never escape into the loop
            log.exception("zmtp: error handling data from %s; closing", self.address)
            self._abort()

    # -- public -----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the connection is closed (by either side)."""
        return self._closed

    @property
    def handshaken(self) -> bool:
        """True once the handshake is done (and still after the connection closes)."""
        return self._state == _OPEN

    @property
    def is_open(self) -> bool:
        """True once the handshake is done, until the connection closes."""
        return self._state == _OPEN and not self._closed

    @property
    def write_buffered(self) -> int:
        """The bytes written and not yet taken by the OS (the peer not reading them)."""
        transport = self._transport
        return 0 if transport is None or self._closed else transport.get_write_buffer_size()

    def write_encoded(self, data: bytes) -> None:
        """Write messages already encoded (see :func:`encode`), in one write, whatever the back-pressure."""
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    def send(self, frames: list[bytes]) -> bool:
        """Write one message; False (message dropped) if not ready, closed or back-pressured."""
        transport = self._transport
        if self._state != _OPEN or self._closed or transport is None:
            return False
        if transport.get_write_buffer_size() > self._max_buffer:
            return False
        transport.write(encode(frames))
        return True

    def close(self) -> None:
        """Close the connection, flushing what is already written."""
        if not self._closed:
            self._closed = True
            if self._transport is not None:
                self._transport.close()

    # -- internals --------------------------------------------------------------------------------
    def _abort(self) -> None:
        self._closed = True
        self._release()
        if self._transport is not None:
            self._transport.abort()

    def _refuse(self, why: str, *args: object) -> None:
        _throttle.log(logging.WARNING, why, "zmtp: closing connection to %s: " + why, self.address, *args)
        self._abort()

    def _hold(self, held: int) -> None:
        """Account for ``held`` bytes of unfinished messages now buffered; past the budget, drop the largest holder.

        The largest, not this one: two peers holding half the budget each would
        otherwise lock every other client's large request out.
        """
        grew = held > self._held
        budget = self._budget
        if budget is not None:
            budget.used += held - self._held
            if held:
                budget.holders.add(self)
            else:
                budget.holders.discard(self)
        self._held = held
        if not held:
            self._partial_since = 0.0
        elif not self._partial_since:
            self._partial_since = self._heard
        while grew and budget is not None and budget.used > budget.limit and not self._closed:
            victim = cast("Connection", max(budget.holders, key=lambda c: cast("Connection", c)._held))
            victim._refuse("unfinished messages would hold %d bytes across connections, over the budget of %d: "
                           "dropped the largest holder (%d bytes)", budget.used, budget.limit, victim._held)

    def _release(self) -> None:
        """Give this connection's buffered bytes back to the budget (it is closing)."""
        if self._held and self._budget is not None:
            self._budget.used -= self._held
        if self._budget is not None:
            self._budget.holders.discard(self)
        self._held = 0
        self._buf.clear()
        self._frames = []

    def _expired(self) -> None:
        if self._state != _OPEN and not self._closed:
            self._refuse("handshake not completed within %.1fs", self._handshake_timeout)

    def _tick(self) -> None:
        """Check the timers (see ``Timeouts``) and send the heartbeat that is due; then re-arm."""
        self._timer = None
        if self._closed:
            return
        t, now = self._timeouts, _monotonic()
        if self._paused:  # backed up: nothing is read, so only the peer's taking our bytes counts
            if self._stalled(now):
                return
            self._arm()
            return
        if t.heartbeat_timeout and now - self._heard > t.heartbeat_timeout:
            self._refuse("nothing heard for %.1fs (heartbeat timeout)", now - self._heard)
            return
        if t.read_timeout and self._partial_since and now - self._partial_since > t.read_timeout:
            self._refuse("a message not completed within %.1fs (%d bytes held)", t.read_timeout, self._held)
            return
        if t.idle_timeout and now - self._active > t.idle_timeout:
            _throttle.log(logging.INFO, "idle", "zmtp: closing connection to %s: no message for %.0fs",
                          self.address, now - self._active)
            self.close()
            return
        if t.heartbeat_ivl and now - self._pinged >= t.heartbeat_ivl * 0.99 and self._transport is not None:
            self._pinged = now
            self._transport.write(ping(t.heartbeat_timeout))
        self._arm()

    def _stalled(self, now: float) -> bool:
        """While paused: True (and the peer dropped) if it took none of our bytes for ``write_timeout``."""
        size, limit = self.write_buffered, self._timeouts.write_timeout
        if size < self._backed_up:
            self._progress = now
        self._backed_up = size
        if limit and now - self._progress > limit:
            self._refuse("the peer took none of its %d bytes of replies for %.1fs (stalled)", size, now - self._progress)
            return True
        return False

    def _arm(self) -> None:
        tick = self._timeouts.tick
        if tick is not None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(tick, self._tick)

    @property
    def idle_since(self) -> float:
        """The monotonic time of the last message received (of the connection, before any)."""
        return self._active

    def _greeting(self) -> bool:
        """Check the peer's 64-byte greeting, then send our READY; True once it passed."""
        buf = self._buf
        problem = greeting_problem(buf)
        if problem is not None:
            self._refuse(problem[0], *problem[1])
            return False
        if len(buf) < 64:
            return False
        del buf[:64]
        self._state = _READY_WAIT
        assert self._transport is not None
        self._transport.write(ready_command(self._SOCKET_TYPE, self._identity))
        return True

    def _on_ready(self, data: bytes) -> None:
        try:
            props = parse_properties(data)
        except ValueError as exc:
            self._refuse("malformed READY (%s)", exc)
            return
        peer_type = props.get(b"socket-type", b"")
        if peer_type not in self._ACCEPTS:
            self._refuse("socket type %s cannot talk to %s", clip(peer_type), self._SOCKET_TYPE.decode())
            return
        self.socket_type = peer_type.decode("ascii", "replace")
        self._state = _OPEN
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pinged = self._heard
        self._arm()
        self._ready()

    def _parse(self, buf: bytes | bytearray) -> int:
        """Consume the complete frames in ``buf``, deliver whole messages; return bytes consumed."""
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            flags = buf[pos]
            if flags & 2:
                if n - pos < 9:
                    break
                size = int.from_bytes(buf[pos + 1 : pos + 9], "big")
                start = pos + 9
            else:
                size = buf[pos + 1]
                start = pos + 2
            if flags & 0xF8:
                self._refuse("invalid frame flags 0x%02x", flags)
                break
            if flags & 4:
                if size > MAX_COMMAND or flags & 1:
                    self._refuse("invalid command frame (%d bytes)", size)
                    break
            elif self._state != _OPEN:
                self._refuse("message frame before READY")
                break
            elif self._msg_bytes + size > self._max_message:
                self._refuse("message of %d+ bytes (frame of %d bytes) over the limit of %d bytes",
                             self._msg_bytes + size, size, self._max_message)
                break
            end = start + size
            if end > n:
                break
            body = bytes(buf[start:end])  # no copy when buf is bytes
            pos = end
            if flags & 4:
                self._on_command(body)
            elif flags & 1:
                if len(self._frames) >= MAX_FRAMES - 1:
                    self._refuse("message of more than %d frames", MAX_FRAMES)
                    break
                self._frames.append(body)
                self._msg_bytes += size
            elif self._frames:
                frames = self._frames
                frames.append(body)
                self._frames = []
                self._msg_bytes = 0
                self._deliver(frames)
            else:
                self._deliver([body])
            if self._closed or self._paused:  # paused: the rest waits in the buffer until the peer reads
                break
        return pos

    def _on_command(self, body: bytes) -> None:
        name = body[1 : 1 + body[0]] if body else b""
        if self._state != _OPEN and name == b"READY":
            self._on_ready(body[6:])
        elif self._state != _OPEN and name != b"ERROR":
            self._refuse("expected READY, got command %s", clip(name))
        elif name == b"PING":
            context = body[7:23]  # skip name-length, "PING", 2-byte TTL
            assert self._transport is not None
            self._transport.write(command(b"PONG", context))
        elif name == b"ERROR":
            self._refuse("peer sent ERROR %s", clip(body[7 : 7 + body[6]] if len(body) > 6 else b""))
        else:
            log.debug("zmtp: ignoring command %s from %s", clip(name), self.address)

    def _ready(self) -> None:
        raise NotImplementedError

    def _deliver(self, frames: list[bytes]) -> None:
        self._active = self._heard
        self._partial_since = 0.0  # the read timeout runs from the start of each message, not of the stream
        try:
            self._on_message(frames)
        except Exception:  # the receiver's fault, not the peer's: the connection goes on
            log.exception("zmtp: on_message failed for a message from %s", self.address)

    def _on_message(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        raise NotImplementedError
