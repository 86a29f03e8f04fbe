"""ZMTP 3.1 (NULL security) on asyncio: a ROUTER server and a reconnecting DEALER, no threads.

Why: with pyzmq, libzmq moves every message through its own I/O threads, so an
RPC round trip wakes four threads on top of the two application loops (client
app -> client I/O thread -> server I/O thread -> server app, and back). On our
VMs each wake-up costs ~150 µs. This module speaks the ZeroMQ wire protocol
(rfc.zeromq.org specs 23 and 37) directly from ``asyncio.Protocol`` callbacks on
the service's own loop, so a round trip costs only the two unavoidable wake-ups.
It interoperates with libzmq DEALER, REQ and ROUTER sockets.

Wire summary: a 64-byte greeting (signature ``FF 00*8 7F``, version 3.1,
mechanism ``NULL``), then a READY command carrying ``Socket-Type`` (and
``Identity``), then frames ``flags size body`` with flags bit0 MORE, bit1 LONG
(8-byte size), bit2 COMMAND. PING is answered with PONG. Every limit on peer
input (greeting, message size, frame count, handshake time) closes only the
offending connection, never the server.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFER = 16 * 2**20
MAX_FRAMES = 64
_MAX_COMMAND = 65536
_GREETING = (
    b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
)
_SHORT_LAST = [bytes((0, n)) for n in range(256)]
_SHORT_MORE = [bytes((1, n)) for n in range(256)]
_LONG = struct.Struct(">BQ")
_HANDSHAKE, _READY_WAIT, _OPEN = 0, 1, 2


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``tcp://host:port`` into ``(host, port)``; port 0 means an ephemeral port.

    ``*`` as host means every interface (``0.0.0.0``) and ``[::1]`` an IPv6
    address. Other transports (ipc://, inproc://) or a malformed endpoint raise
    ``ValueError``.
    """
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
        raise ValueError(f"unsupported endpoint {endpoint!r}: only tcp://host:port is supported")
    host, sep, port_text = endpoint[6:].rpartition(":")
    if not sep or not host or not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"malformed endpoint {endpoint!r}: expected tcp://host:port")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"malformed endpoint {endpoint!r}: port {port} out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "*":
        host = "0.0.0.0"
    if not host or any(c in host for c in "/[] "):
        raise ValueError(f"malformed endpoint {endpoint!r}: bad host {host!r}")
    return host, port


def encode(frames: list[bytes]) -> bytes:
    """Encode one message (a non-empty list of frames) into its ZMTP wire bytes."""
    if len(frames) == 1:
        body = frames[0]
        n = len(body)
        return (_SHORT_LAST[n] if n < 256 else _LONG.pack(2, n)) + body
    parts: list[bytes] = []
    last = len(frames) - 1
    for i, body in enumerate(frames):
        n = len(body)
        more = i < last
        if n < 256:
            parts.append(_SHORT_MORE[n] if more else _SHORT_LAST[n])
        else:
            parts.append(_LONG.pack(3 if more else 2, n))
        parts.append(body)
    return b"".join(parts)


def _command(name: bytes, data: bytes = b"") -> bytes:
    body = bytes((len(name),)) + name + data
    n = len(body)
    return (bytes((4, n)) if n < 256 else _LONG.pack(6, n)) + body


def _ready_command(socket_type: bytes, identity: bytes | None) -> bytes:
    props = [(b"Socket-Type", socket_type)]
    if identity is not None:
        props.append((b"Identity", identity))
    data = b"".join(bytes((len(k),)) + k + len(v).to_bytes(4, "big") + v for k, v in props)
    return _command(b"READY", data)


def _parse_properties(data: bytes) -> dict[bytes, bytes]:
    """Parse READY metadata; raise ValueError on a truncated property."""
    props: dict[bytes, bytes] = {}
    pos, n = 0, len(data)
    while pos < n:
        klen = data[pos]
        if pos + 1 + klen + 4 > n:
            raise ValueError("truncated property name")
        key = data[pos + 1 : pos + 1 + klen]
        pos += 1 + klen
        vlen = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if pos + vlen > n:
            raise ValueError("truncated property value")
        props[key.lower()] = data[pos : pos + vlen]
        pos += vlen
    return props


class _Connection(asyncio.Protocol):
    """One ZMTP connection: handshake, framing, limits. Subclasses route the events."""

    _SOCKET_TYPE = b""
    _ACCEPTS: frozenset[bytes] = frozenset()

    def __init__(self, owner: RouterServer | Dealer, identity: bytes | None) -> None:
        self._identity = identity
        self._max_message = owner.max_message_bytes
        self._max_buffer = owner.max_buffer_bytes
        self._handshake_timeout = owner.handshake_timeout
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._buf = bytearray()
        self._state = _HANDSHAKE
        self._closed = False
        self._frames: list[bytes] = []
        self._msg_bytes = 0
        self.socket_type = ""
        self.address = "?"

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.address = f"{peer[0]}:{peer[1]}"
        self._timer = asyncio.get_running_loop().call_later(self._handshake_timeout, self._expired)
        transport.write(_GREETING)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._lost()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        buf = self._buf
        try:
            if not buf and self._state == _OPEN:  # fast path: parse the chunk itself, no copy
                pos = self._parse(data)
                if pos < len(data) and not self._closed:
                    buf += data[pos:]
                return
            buf += data
            if self._state == _HANDSHAKE and not self._greeting():
                return
            pos = self._parse(buf)
            if pos and not self._closed:
                del buf[:pos]
        except Exception:  # defensive: bad input must never escape into the loop
            log.exception("zmtp: error handling data from %s; closing", self.address)
            self._abort()

    # -- public -----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the connection is closed (by either side)."""
        return self._closed

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
        if self._transport is not None:
            self._transport.abort()

    def _refuse(self, why: str, *args: object) -> None:
        log.warning("zmtp: closing connection to %s: " + why, self.address, *args)
        self._abort()

    def _expired(self) -> None:
        if self._state != _OPEN and not self._closed:
            self._refuse("handshake not completed within %.1fs", self._handshake_timeout)

    def _greeting(self) -> bool:
        """Check the peer's 64-byte greeting, then send our READY; True once it passed."""
        buf = self._buf
        if buf[0] != 0xFF or (len(buf) >= 10 and not buf[9] & 1):
            self._refuse("not a ZMTP greeting")
            return False
        if len(buf) < 64:
            return False
        if buf[10] < 3:
            self._refuse("unsupported ZMTP version %d.%d", buf[10], buf[11])
            return False
        mechanism = bytes(buf[12:32]).rstrip(b"\x00")
        if mechanism != b"NULL":
            self._refuse("security mechanism %r refused (only NULL)", mechanism)
            return False
        del buf[:64]
        self._state = _READY_WAIT
        assert self._transport is not None
        self._transport.write(_ready_command(self._SOCKET_TYPE, self._identity))
        return True

    def _on_ready(self, data: bytes) -> None:
        try:
            props = _parse_properties(data)
        except ValueError as exc:
            self._refuse("malformed READY (%s)", exc)
            return
        peer_type = props.get(b"socket-type", b"")
        if peer_type not in self._ACCEPTS:
            self._refuse("socket type %r cannot talk to %s", peer_type, self._SOCKET_TYPE.decode())
            return
        self.socket_type = peer_type.decode("ascii", "replace")
        self._state = _OPEN
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
                if size > _MAX_COMMAND or flags & 1:
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
            if self._closed:
                break
        return pos

    def _on_command(self, body: bytes) -> None:
        name = body[1 : 1 + body[0]] if body else b""
        if self._state != _OPEN and name == b"READY":
            self._on_ready(body[6:])
        elif self._state != _OPEN and name != b"ERROR":
            self._refuse("expected READY, got command %r", name)
        elif name == b"PING":
            context = body[7:23]  # skip name-length, "PING", 2-byte TTL
            assert self._transport is not None
            self._transport.write(_command(b"PONG", context))
        elif name == b"ERROR":
            self._refuse("peer sent ERROR %r", body[7 : 7 + body[6]] if len(body) > 6 else b"")
        else:
            log.debug("zmtp: ignoring command %r from %s", name, self.address)

    def _ready(self) -> None:
        raise NotImplementedError

    def _deliver(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        raise NotImplementedError


class Peer(_Connection):
    """One established connection as seen by a ``RouterServer``; reply with ``send``."""

    _SOCKET_TYPE = b"ROUTER"
    _ACCEPTS = frozenset((b"DEALER", b"REQ", b"ROUTER"))

    def __init__(self, server: RouterServer) -> None:
        super().__init__(server, None)
        self._server = server
        server._all.add(self)

    def _ready(self) -> None:
        self._server._peers.add(self)

    def _deliver(self, frames: list[bytes]) -> None:
        try:
            self._server._on_message(self, frames)
        except Exception:
            log.exception("zmtp: on_message failed for a message from %s", self.address)

    def _lost(self) -> None:
        self._server._peers.discard(self)
        self._server._all.discard(self)


class RouterServer:
    """A listening ROUTER: every complete message goes to ``on_message(peer, frames)``."""

    def __init__(
        self,
        endpoint: str,
        on_message: Callable[[Peer, list[bytes]], None],
        *,
        max_message_bytes: int,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER,
        handshake_timeout: float = 10.0,
    ) -> None:
        self._host, self._port = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self._on_message = on_message
        self.max_message_bytes = max_message_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.handshake_timeout = handshake_timeout
        self._server: asyncio.Server | None = None
        self._peers: set[Peer] = set()
        self._all: set[Peer] = set()

    @property
    def connections(self) -> int:
        """The number of peers that completed the handshake and are still connected."""
        return len(self._peers)

    async def start(self) -> None:
        """Bind and listen; ``endpoint`` then names the real port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Peer(self), self._host, self._port)
        port = self._server.sockets[0].getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.endpoint = f"tcp://{host}:{port}"

    async def close(self) -> None:
        """Stop listening and close every connection; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for peer in list(self._all):
            peer.close()
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)  # let connection_lost run


class _DealerConnection(_Connection):
    _SOCKET_TYPE = b"DEALER"
    _ACCEPTS = frozenset((b"ROUTER", b"REP", b"DEALER"))

    def __init__(self, dealer: Dealer) -> None:
        super().__init__(dealer, dealer.identity)
        self._dealer = dealer
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def _ready(self) -> None:
        self._dealer._ready(self)

    def _deliver(self, frames: list[bytes]) -> None:
        try:
            self._dealer._on_message(frames)
        except Exception:
            log.exception("zmtp: on_message failed for a message from %s", self.address)

    def _lost(self) -> None:
        if not self.done.done():
            self.done.set_result(self._state == _OPEN)


class Dealer:
    """A DEALER with one outgoing connection that reconnects by itself and queues while down."""

    def __init__(
        self,
        endpoint: str,
        on_message: Callable[[list[bytes]], None],
        *,
        max_message_bytes: int,
        hwm: int = 100_000,
        reconnect_ivl: float = 0.05,
        reconnect_ivl_max: float = 1.0,
        handshake_timeout: float = 10.0,
        identity: bytes = b"",
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        self._host, self._port = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self._on_message = on_message
        self.max_message_bytes = max_message_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.handshake_timeout = handshake_timeout
        self.identity = identity
        self._hwm = hwm
        self._ivl = reconnect_ivl
        self._ivl_max = max(reconnect_ivl_max, reconnect_ivl)
        self._queue: deque[list[bytes]] = deque()
        self._conn: _DealerConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        """True while a connection is established and past its handshake."""
        conn = self._conn
        return conn is not None and conn._state == _OPEN and not conn._closed

    def start(self) -> None:
        """Start connecting in the background; call from the running loop."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, frames: list[bytes]) -> bool:
        """Send now when connected, else queue up to ``hwm`` messages; False when dropped."""
        conn = self._conn
        if conn is not None and conn._state == _OPEN and not conn._closed:
            return conn.send(frames)
        if self._closing or len(self._queue) >= self._hwm:
            return False
        self._queue.append(frames)
        return True

    def close(self) -> None:
        """Stop reconnecting and close the connection; safe to call twice."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._queue.clear()

    def _ready(self, conn: _DealerConnection) -> None:
        self._conn = conn
        if self._queue and conn._transport is not None:  # flush in order, in one write
            conn._transport.write(b"".join(map(encode, self._queue)))
            self._queue.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._ivl
        while not self._closing:
            opened = False
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: _DealerConnection(self), self._host, self._port),
                    self.handshake_timeout,
                )
                try:
                    opened = await conn.done
                finally:
                    if self._closing:
                        conn.close()
            except (TimeoutError, OSError) as exc:
                log.debug("zmtp: connect to %s failed: %s", self.endpoint, exc)
            except Exception:  # never let the reconnect loop die
                log.exception("zmtp: unexpected error connecting to %s", self.endpoint)
            finally:
                if self._conn is not None and self._conn.closed:
                    self._conn = None
            if opened:
                log.info("zmtp: connection to %s lost; reconnecting", self.endpoint)
                delay = self._ivl
            await asyncio.sleep(delay)
            if not opened:
                delay = min(delay * 2, self._ivl_max)

