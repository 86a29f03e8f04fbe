"""ZeroMQ sockets on :mod:`trader.messaging.zmtp` connections: a ROUTER server and a reconnecting DEALER.

``RouterServer`` listens and hands every complete message to
``on_message(peer, frames)``; a reply goes back with ``peer.send``. ``Dealer``
keeps one outgoing connection, reconnecting with backoff, and queues messages
(up to ``hwm``) while it is down. Both run on the caller's asyncio loop, and
both send heartbeats and drop a peer that stopped answering them (``Timeouts``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable

from trader.messaging.zmtp import DEFAULT_MAX_BUFFER, Connection
from trader.messaging.zmtp_limits import Budget, Timeouts
from trader.messaging.zmtp_wire import encode, parse_endpoint
from trader.peer_text import LogThrottle
from trader.retry import Backoff, RetryPolicy

log = logging.getLogger(__name__)
_throttle = LogThrottle(log)

DEFAULT_MAX_CONNECTIONS = 1024  # per listening socket; each holds a file descriptor
DEFAULT_MAX_BUFFERED = 64 * 2**20  # bytes of unfinished messages a server holds across its connections
# A server closes a connection silent for 5 minutes (a client reconnects by itself) and drops a
# message that takes more than 30 s to arrive; both ends PING every 10 s and drop a peer silent for 30 s.
SERVER_TIMEOUTS = Timeouts(heartbeat_ivl=10.0, heartbeat_timeout=30.0, idle_timeout=300.0, read_timeout=30.0)
DEALER_TIMEOUTS = Timeouts(heartbeat_ivl=10.0, heartbeat_timeout=30.0)

__all__ = ["DEALER_TIMEOUTS", "DEFAULT_MAX_BUFFERED", "DEFAULT_MAX_CONNECTIONS", "SERVER_TIMEOUTS", "Dealer", "Peer",
           "RouterServer", "Timeouts"]


class _Socket:
    """What RouterServer and Dealer share: the endpoint, the callback and the limits their connections take."""

    def __init__(self, endpoint: str, on_message: Callable[..., None], *, max_message_bytes: int,
                 max_buffer_bytes: int, handshake_timeout: float, timeouts: Timeouts,
                 budget: Budget | None) -> None:
        self._host, self._port = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self._on_message = on_message
        self.max_message_bytes = max_message_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.handshake_timeout = handshake_timeout
        self.timeouts = timeouts
        self.budget = budget


class Peer(Connection):
    """One established connection as seen by a ``RouterServer``; reply with ``send``."""

    _SOCKET_TYPE = b"ROUTER"
    _ACCEPTS = frozenset((b"DEALER", b"REQ", b"ROUTER"))

    def __init__(self, server: RouterServer) -> None:
        super().__init__(server, None)
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._server._all.add(self)
        self._server._admit(self)

    def send(self, frames: list[bytes]) -> bool:
        """Write one message; False if it was dropped. A peer that left ``max_buffer_bytes`` unread is dropped too.

        A client that sends requests and never reads the replies would
        otherwise hold that much of the server's memory for as long as it likes.
        """
        if super().send(frames):
            return True
        if self.is_open:  # open, so refused for back-pressure: the peer stopped reading
            self._refuse("the peer left %d bytes of replies unread", self.write_buffered)
        return False

    def _ready(self) -> None:
        self._server._peers.add(self)

    def _on_message(self, frames: list[bytes]) -> None:
        self._server._on_message(self, frames)

    def _lost(self) -> None:
        self._server._peers.discard(self)
        self._server._all.discard(self)


class RouterServer(_Socket):
    """A listening ROUTER: every complete message goes to ``on_message(peer, frames)``.

    Peer input is bounded: ``max_message_bytes`` per connection, and
    ``max_buffered_bytes`` of unfinished messages across all of them (a
    connection whose unfinished message would go past it is dropped). At most
    ``max_connections`` are open: a new one past it evicts the connection
    that has been idle longest, so a flood of idle connections cannot lock out
    a new client (the operator's CLI). ``timeouts`` (default ``SERVER_TIMEOUTS``)
    drop dead, idle and stalled peers.
    """

    def __init__(
        self,
        endpoint: str,
        on_message: Callable[[Peer, list[bytes]], None],
        *,
        max_message_bytes: int,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER,
        handshake_timeout: float = 10.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED,
        timeouts: Timeouts = SERVER_TIMEOUTS,
    ) -> None:
        super().__init__(endpoint, on_message, max_message_bytes=max_message_bytes,
                         max_buffer_bytes=max_buffer_bytes, handshake_timeout=handshake_timeout,
                         timeouts=timeouts, budget=Budget(max_buffered_bytes))
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.max_connections = max_connections
        self.evicted = 0  # idle connections closed to make room for a new one past max_connections
        self._server: asyncio.Server | None = None
        self._peers: set[Peer] = set()
        self._all: set[Peer] = set()

    @property
    def connections(self) -> int:
        """The number of peers that completed the handshake and are still connected."""
        return len(self._peers)

    @property
    def buffered(self) -> int:
        """The bytes of unfinished messages held across the connections now."""
        assert self.budget is not None
        return self.budget.used

    def _admit(self, newcomer: Peer) -> None:
        """Past ``max_connections`` (the newcomer counted), close the connection idle the longest.

        Every connection holds a socket, buffers and timers, so a client that
        opens them without end must not exhaust the process's file descriptors;
        and it must not lock others out either, which refusing the newcomer
        would. The longest idle is the one whose last message (or, before any,
        whose connection) is oldest: a client that is calling stays. A 32nd of
        the limit goes at once, so that a flood of connections costs one scan
        of them per 32 newcomers, not one each. Evictions are logged at a
        bounded rate.
        """
        if len(self._all) <= self.max_connections:
            return
        count = max(len(self._all) - self.max_connections, self.max_connections // 32)
        others = (p for p in self._all if p is not newcomer)
        for victim in heapq.nsmallest(count, others, key=lambda p: p.idle_since):
            self._all.discard(victim)
            self._peers.discard(victim)
            victim._abort()
            self.evicted += 1
            _throttle.log(logging.WARNING, "evict", "zmtp: %s at its limit of %d connections: closed %s, idle for "
                          "%.0fs, to admit %s", self.endpoint, self.max_connections, victim.address,
                          time.monotonic() - victim.idle_since, newcomer.address)

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


class _DealerConnection(Connection):
    _SOCKET_TYPE = b"DEALER"
    _ACCEPTS = frozenset((b"ROUTER", b"REP", b"DEALER"))

    def __init__(self, dealer: Dealer) -> None:
        super().__init__(dealer, dealer.identity)
        self._dealer = dealer
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def _ready(self) -> None:
        self._dealer._ready(self)

    def _on_message(self, frames: list[bytes]) -> None:
        self._dealer._on_message(frames)

    def _lost(self) -> None:
        if not self.done.done():
            self.done.set_result(self.handshaken)


class Dealer(_Socket):
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
        timeouts: Timeouts = DEALER_TIMEOUTS,
    ) -> None:
        super().__init__(endpoint, on_message, max_message_bytes=max_message_bytes,
                         max_buffer_bytes=max_buffer_bytes, handshake_timeout=handshake_timeout,
                         timeouts=timeouts, budget=None)
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
        return conn is not None and conn.is_open

    def start(self) -> None:
        """Start connecting in the background; call from the running loop."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, frames: list[bytes]) -> bool:
        """Send now when connected, else queue up to ``hwm`` messages; False when dropped."""
        conn = self._conn
        if conn is not None and conn.is_open:
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
        if self._queue:  # flush in order, in one write
            conn.write_encoded(b"".join(map(encode, self._queue)))
            self._queue.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(RetryPolicy(self._ivl, self._ivl_max))
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
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

