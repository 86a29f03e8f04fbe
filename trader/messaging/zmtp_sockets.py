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
from typing import cast

from trader.messaging.zmtp import DEFAULT_MAX_BUFFER, Connection
from trader.messaging.zmtp_limits import CLIENT_PING_INTERVAL, Budget, Timeouts
from trader.messaging.zmtp_wire import encode, parse_endpoint
from trader.peer_text import LogThrottle
from trader.retry import Backoff, RetryPolicy

log = logging.getLogger(__name__)
_throttle = LogThrottle(log)

DEFAULT_MAX_CONNECTIONS = 1024  # per listening socket; each holds a file descriptor (see trader.service.fds)
DEFAULT_MAX_BUFFERED = 64 * 2**20  # bytes of unfinished messages a server holds across its connections
DEFAULT_MAX_OUTBOUND = 256 * 2**20  # bytes of replies not yet taken by their peers, across a server's connections
DEFAULT_WRITE_HIGH_WATER = 2**20  # a peer with more of its replies unread than this: its requests wait unread
# A server closes a connection silent for 5 minutes (a client reconnects by itself), drops a message that
# takes more than 30 s to arrive and a peer that took none of its backed-up replies for 30 s; both ends
# PING every 10 s and drop a peer silent for 30 s.
SERVER_TIMEOUTS = Timeouts(heartbeat_ivl=CLIENT_PING_INTERVAL, heartbeat_timeout=30.0, idle_timeout=300.0,
                           read_timeout=30.0, write_timeout=30.0)
DEALER_TIMEOUTS = Timeouts(heartbeat_ivl=CLIENT_PING_INTERVAL, heartbeat_timeout=30.0)

__all__ = ["DEALER_TIMEOUTS", "DEFAULT_MAX_BUFFERED", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_MAX_OUTBOUND",
           "DEFAULT_WRITE_HIGH_WATER", "SERVER_TIMEOUTS", "Dealer", "Peer", "RouterServer", "Timeouts"]


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
    """One established connection as seen by a ``RouterServer``; reply with ``send``.

    Back-pressure, not a size rule: while more than the server's
    ``write_high_water`` of this peer's replies wait unread, its requests are
    not read either (``pause_writing`` pauses reading; ``resume_writing``,
    once the peer has taken most of them, resumes), so a client that does
    not read cannot make the server write without end, and one that reads a
    large reply slowly is served whole. A peer that took none of its replies
    for ``Timeouts.write_timeout`` is dropped as stalled, and past the
    server's outbound budget the peer holding the most unread goes.
    """

    _SOCKET_TYPE = b"ROUTER"
    _ACCEPTS = frozenset((b"DEALER", b"REQ", b"ROUTER"))

    def __init__(self, server: RouterServer) -> None:
        super().__init__(server, None)
        self._server = server
        self._out = 0  # the write buffer's size as last counted in the server's outbound budget

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        high = self._server.write_high_water
        cast("asyncio.WriteTransport", transport).set_write_buffer_limits(high=high, low=high // 4)
        self._server._all.add(self)
        self._server._admit(self)

    def send(self, frames: list[bytes]) -> bool:
        """Write one message, whatever the peer left unread (see the class); False if the connection is not open."""
        transport = self._transport
        if transport is None or not self.is_open:
            return False
        transport.write(encode(frames))
        self._server._count_out(self)
        return True

    def pause_writing(self) -> None:
        transport = self._transport
        if transport is None or self._closed or self._paused:
            return
        self._paused = True
        self._backed_up = self.write_buffered
        self._progress = time.monotonic()
        transport.pause_reading()

    def resume_writing(self) -> None:
        transport = self._transport
        if not self._paused or transport is None or self._closed:
            return
        self._paused = False
        now = time.monotonic()
        self._heard = now  # its PINGs waited unread with its requests
        if self._held:
            self._partial_since = now
        self._server._recount(self)  # smaller now; never drop anyone from inside the transport's callback
        transport.resume_reading()
        if self._buf:  # requests read before the pause: parse them, outside the transport's callback
            asyncio.get_running_loop().call_soon(self._parse_held)

    def _parse_held(self) -> None:
        if self._buf and not self._paused and not self._closed:
            self.data_received(b"")

    def _release(self) -> None:
        super()._release()
        self._server._forget_out(self)

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
    ``max_buffered_bytes`` of unfinished messages across all of them (past
    it, the connection holding the most is dropped). Output is bounded by
    back-pressure (see ``Peer``) and by ``max_outbound_bytes`` of replies
    unread across the connections (past it, the peer leaving the most
    unread is dropped). At most
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
        handshake_timeout: float = 10.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED,
        timeouts: Timeouts = SERVER_TIMEOUTS,
        max_outbound_bytes: int = DEFAULT_MAX_OUTBOUND,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    ) -> None:
        # Peer.send writes whatever is unread (back-pressure instead): the write-buffer ceiling is the Dealer's
        super().__init__(endpoint, on_message, max_message_bytes=max_message_bytes,
                         max_buffer_bytes=max_outbound_bytes, handshake_timeout=handshake_timeout,
                         timeouts=timeouts, budget=Budget(max_buffered_bytes))
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if write_high_water < 1:
            raise ValueError(f"write_high_water must be >= 1 byte, got {write_high_water}")
        self.max_connections = max_connections
        self.outbound_budget = Budget(max_outbound_bytes)
        self.write_high_water = write_high_water
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

    @property
    def outbound(self) -> int:
        """The bytes of replies written and not yet taken by their peers, across the connections now (exact)."""
        return sum(p.write_buffered for p in self._all)

    def _count_out(self, peer: Peer) -> None:
        """Count ``peer``'s unread replies in the outbound budget; past it, drop the peers leaving the most unread.

        Between sends a count may be stale (a peer read since), so past the
        limit every holder is counted again before anyone is dropped.
        """
        budget = self.outbound_budget
        self._recount(peer)
        if budget.used <= budget.limit:
            return
        for holder in list(budget.holders):
            self._recount(cast("Peer", holder))
        while budget.used > budget.limit and budget.holders:
            victim = cast("Peer", max(budget.holders, key=lambda p: cast("Peer", p)._out))
            victim._refuse("replies unread would hold %d bytes across connections, over the budget of %d: dropped "
                           "the peer leaving the most (%d bytes)", budget.used, budget.limit, victim._out)

    def _recount(self, peer: Peer) -> None:
        size = peer.write_buffered
        budget = self.outbound_budget
        budget.used += size - peer._out
        peer._out = size
        if size:
            budget.holders.add(peer)
        else:
            budget.holders.discard(peer)

    def _forget_out(self, peer: Peer) -> None:
        self.outbound_budget.used -= peer._out
        peer._out = 0
        self.outbound_budget.holders.discard(peer)

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

