"""ZeroMQ sockets on :mod:`trader.messaging.zmtp` connections: a ROUTER server and a reconnecting DEALER.

``RouterServer`` listens and hands every complete message to
``on_message(peer, frames)``; a reply goes back with ``peer.send``. ``Dealer``
keeps one outgoing connection, reconnecting with backoff, and queues messages
(up to ``hwm``) while it is down. Both run on the caller's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from trader.messaging.zmtp import DEFAULT_MAX_BUFFER, Connection, encode, parse_endpoint
from trader.retry import Backoff, RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 1024  # per listening socket; each holds a file descriptor

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Dealer", "Peer", "RouterServer"]


class _Socket:
    """What RouterServer and Dealer share: the endpoint, the callback and the limits their connections take."""

    def __init__(self, endpoint: str, on_message: Callable[..., None], *, max_message_bytes: int,
                 max_buffer_bytes: int, handshake_timeout: float) -> None:
        self._host, self._port = parse_endpoint(endpoint)
        self.endpoint = endpoint
        self._on_message = on_message
        self.max_message_bytes = max_message_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.handshake_timeout = handshake_timeout


class Peer(Connection):
    """One established connection as seen by a ``RouterServer``; reply with ``send``."""

    _SOCKET_TYPE = b"ROUTER"
    _ACCEPTS = frozenset((b"DEALER", b"REQ", b"ROUTER"))

    def __init__(self, server: RouterServer) -> None:
        super().__init__(server, None)
        self._server = server
        server._all.add(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._server._refuse(transport):
            self._server._all.discard(self)
            self._closed = True
            transport.abort()
            return
        super().connection_made(transport)

    def _ready(self) -> None:
        self._server._peers.add(self)

    def _on_message(self, frames: list[bytes]) -> None:
        self._server._on_message(self, frames)

    def _lost(self) -> None:
        self._server._peers.discard(self)
        self._server._all.discard(self)


class RouterServer(_Socket):
    """A listening ROUTER: every complete message goes to ``on_message(peer, frames)``."""

    def __init__(
        self,
        endpoint: str,
        on_message: Callable[[Peer, list[bytes]], None],
        *,
        max_message_bytes: int,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER,
        handshake_timeout: float = 10.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        super().__init__(endpoint, on_message, max_message_bytes=max_message_bytes,
                         max_buffer_bytes=max_buffer_bytes, handshake_timeout=handshake_timeout)
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.max_connections = max_connections
        self.refused = 0  # connections closed at once because max_connections were open
        self._server: asyncio.Server | None = None
        self._peers: set[Peer] = set()
        self._all: set[Peer] = set()
        self._full = False

    @property
    def connections(self) -> int:
        """The number of peers that completed the handshake and are still connected."""
        return len(self._peers)

    def _refuse(self, transport: asyncio.BaseTransport) -> bool:
        """True (and counted) if a new connection would go past ``max_connections``: it is closed unread.

        Every connection holds a socket, buffers and a handshake timer, so a
        client that opens them without end must not exhaust the process's file
        descriptors. A warning is logged when the limit is first met, not per refusal.
        """
        if len(self._all) <= self.max_connections:  # the new peer is already counted
            self._full = False
            return False
        self.refused += 1
        if not self._full:
            self._full = True
            log.warning("zmtp: %s at its limit of %d connections; refusing new ones (from %s)", self.endpoint,
                        self.max_connections, transport.get_extra_info("peername"))
        return True

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
    ) -> None:
        super().__init__(endpoint, on_message, max_message_bytes=max_message_bytes,
                         max_buffer_bytes=max_buffer_bytes, handshake_timeout=handshake_timeout)
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

