"""The RPC's CURVE transport: a pyzmq ROUTER server and DEALER client, read from the service's asyncio loop.

They have the shape of :mod:`trader.messaging.zmtp_sockets`' ``RouterServer``
and ``Dealer`` (``on_message(peer, frames)``, ``peer.send``, a dealer that
queues while the server is away and reconnects by itself), so ``RpcServer``
and ``RpcClient`` keep one envelope, one registry and one set of semantics
whichever transport the settings choose. libzmq does the CURVE handshake,
the encryption, the ZAP check of the client's key (see
:mod:`trader.messaging.curve`), reconnection and heartbeats; a
:class:`~trader.messaging.drain.Drainer` reads each socket from the loop
without a task per message.

Of the RPC's limits (``services.<name>.rpc_*``) the CURVE sockets apply what
libzmq has: ``Timeouts.heartbeat_ivl`` and ``heartbeat_timeout`` as
ZMQ_HEARTBEAT_IVL/TIMEOUT/TTL, the handshake time as ZMQ_HANDSHAKE_IVL and
four times ``max_frame_bytes`` as ZMQ_MAXMSGSIZE. libzmq has no equivalent of
``idle_timeout``, ``read_timeout``, ``write_timeout``, ``max_connections``,
the inbound and outbound byte budgets or the write high-water mark in bytes
(its SNDHWM counts messages): those do not apply in curve mode, where only a
holder of an allowed key gets past the handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import zmq

from trader.messaging.curve import (
    ClientKeys,
    ServerKeys,
    release_server,
    secure_client,
    secure_server,
)
from trader.messaging.drain import Drainer
from trader.messaging.zmtp_limits import Timeouts
from trader.messaging.zmtp_sockets import DEALER_TIMEOUTS, SERVER_TIMEOUTS

log = logging.getLogger(__name__)

HWM = 100_000

__all__ = ["CurveDealer", "CurvePeer", "CurveRouter"]


class _CurveSocket:
    """What the CURVE router and dealer share: one pyzmq socket, read from the loop by a Drainer."""

    def __init__(self, endpoint: str, max_message_bytes: int, context: zmq.Context | None, timeouts: Timeouts,
                 handshake_timeout: float) -> None:
        self.endpoint = endpoint
        self._max = max_message_bytes
        self._timeouts = timeouts
        self._handshake_timeout = handshake_timeout
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._drainer: Drainer | None = None

    def _new_socket(self, kind: int, hwm: int) -> zmq.Socket:
        """Return a new socket of ``kind``: no linger, a larger message drops its sender, ``hwm`` queued each way."""
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        return sock

    def _read(self, sock: zmq.Socket, on_frames: Callable[[list[bytes]], None]) -> None:
        """Keep ``sock`` as this one's socket and start reading it into ``on_frames``."""
        self._sock = sock
        self._drainer = Drainer(sock, on_frames, multipart=True)
        self._drainer.start()

    def _shut(self) -> bool:
        """Stop reading and close the socket at once; False if it was not open."""
        sock, self._sock = self._sock, None
        if sock is None:
            return False
        if self._drainer is not None:
            self._drainer.stop()
        sock.close(linger=0)
        return True


class CurvePeer:
    """One client as a ``CurveRouter`` sees it (by its routing id); reply with ``send``."""

    __slots__ = ("_router", "closed", "identity")

    def __init__(self, router: CurveRouter, identity: bytes) -> None:
        self._router = router
        self.identity = identity
        self.closed = False

    @property
    def address(self) -> str:
        """The client as logs name it: its routing id (libzmq does not tell its TCP address)."""
        return f"curve:{self.identity[:8].hex()}"

    def send(self, frames: list[bytes]) -> bool:
        """Send a message back to this client; False if it is gone or not reading."""
        return self._router._send(self, frames)


class CurveRouter(_CurveSocket):
    """A bound CURVE ROUTER: every message goes to ``on_message(peer, frames)`` on the running loop.

    A message over ``max_message_bytes`` disconnects its sender (libzmq's
    ZMQ_MAXMSGSIZE); a handshake not done within ``handshake_timeout`` is
    dropped, and so is a peer silent for ``timeouts.heartbeat_timeout``
    (ZMTP heartbeats every ``timeouts.heartbeat_ivl``).
    """

    def __init__(
        self,
        endpoint: str,
        on_message: Callable[[CurvePeer, list[bytes]], None],
        *,
        keys: ServerKeys,
        max_message_bytes: int,
        context: zmq.Context | None = None,
        timeouts: Timeouts = SERVER_TIMEOUTS,
        handshake_timeout: float = 10.0,
    ) -> None:
        super().__init__(endpoint, max_message_bytes, context, timeouts, handshake_timeout)
        self._on_message = on_message
        self._keys = keys
        self._domain: str | None = None

    async def start(self) -> None:
        """Bind and start reading; ``endpoint`` then names the real port."""
        if self._sock is not None:
            return
        sock = self._new_socket(zmq.ROUTER, HWM)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished client fails, it is not dropped silently
        self._domain = secure_server(sock, self._keys, self._timeouts, self._handshake_timeout)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError:
            sock.close()
            release_server(self._ctx, self._domain)
            raise
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._read(sock, self._dispatch)

    async def close(self) -> None:
        """Stop reading and close the socket; safe to call twice."""
        if self._shut() and self._domain is not None:
            release_server(self._ctx, self._domain)

    def _dispatch(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return  # a routing id alone: nothing to answer
        self._on_message(CurvePeer(self, frames[0]), frames[1:])

    def _send(self, peer: CurvePeer, frames: list[bytes]) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.send_multipart([peer.identity, *frames], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False  # the client's queue is full: it is not reading
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            peer.closed = True
            return False
        finally:
            if self._drainer is not None:
                self._drainer.kick()  # a send may consume the socket's edge-triggered read signal


class CurveDealer(_CurveSocket):
    """A CURVE DEALER that connects, reconnects by itself and queues (up to ``hwm``) while the server is away."""

    def __init__(
        self,
        endpoint: str,
        on_message: Callable[[list[bytes]], None],
        *,
        keys: ClientKeys,
        max_message_bytes: int,
        hwm: int = HWM,
        reconnect_ivl: float = 0.05,
        reconnect_ivl_max: float = 1.0,
        context: zmq.Context | None = None,
        timeouts: Timeouts = DEALER_TIMEOUTS,
        handshake_timeout: float = 10.0,
    ) -> None:
        super().__init__(endpoint, max_message_bytes, context, timeouts, handshake_timeout)
        self._on_message = on_message
        self._keys = keys
        self._hwm = hwm
        self._ivl = reconnect_ivl
        self._ivl_max = max(reconnect_ivl_max, reconnect_ivl)

    def start(self) -> None:
        """Connect in the background and start reading; call from the running loop."""
        if self._sock is not None:
            return
        sock = self._new_socket(zmq.DEALER, self._hwm)
        sock.setsockopt(zmq.RECONNECT_IVL, max(1, int(self._ivl * 1000)))
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(1, int(self._ivl_max * 1000)))
        secure_client(sock, self._keys, self._timeouts, self._handshake_timeout)
        sock.connect(self.endpoint)
        self._read(sock, self._on_message)

    def send(self, frames: list[bytes]) -> bool:
        """Send (or queue while disconnected); False when the queue is full or the dealer closed."""
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        finally:
            if self._drainer is not None:
                self._drainer.kick()

    def close(self) -> None:
        """Stop reading and close the socket; safe to call twice."""
        self._shut()
