"""What a ZMTP connection holds its peer to: its timers (heartbeats, dead, idle, stalled, TCP keepalive) and a buffer budget.

:class:`trader.messaging.zmtp.Connection` takes these from the socket that
owns it (``Limits``); the defaults of a server and of a dealer are in
:mod:`trader.messaging.zmtp_sockets`.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CLIENT_PING_INTERVAL", "CLIENT_PING_MARGIN", "KEEPALIVE", "Budget", "Limits", "Timeouts", "keepalive"]

log = logging.getLogger(__name__)

# How often an RPC client (either transport) PINGs its server: a server's heartbeat timeout must leave room
# for it (see ``ServiceSettings``), or a client that is idle but alive is dropped.
CLIENT_PING_INTERVAL = 10.0
CLIENT_PING_MARGIN = 1.5  # a server's heartbeat timeout is at least this many client ping intervals
# TCP keepalive: a peer that vanished without a FIN (host down, cable out) is noticed after
# about KEEPIDLE + KEEPCNT * KEEPINTVL seconds of silence, not when a write finally fails.
KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}


def keepalive(sock: socket.socket | None) -> None:
    """Switch TCP keepalive on for ``sock`` with the ``KEEPALIVE`` timings (where the OS has them)."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in KEEPALIVE.items():
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError as exc:  # not a TCP socket, or an OS without these options: keep the connection
        log.debug("zmtp: keepalive not set: %s", exc)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """A connection's timers once its handshake is done, in seconds; None switches one off.

    ``heartbeat_ivl``: send PING this often. ``heartbeat_timeout``: nothing at
    all heard from the peer (a message, PING or PONG) for this long: it is dead,
    drop it (a ``Dealer`` then reconnects). ``idle_timeout``: no message from the
    peer for this long (PINGs do not count): close it. ``read_timeout``: a message
    begun and not completed within this: drop it (a stalled or trickling writer).
    ``write_timeout`` (a server's): a peer whose replies are backed up past the
    high-water mark (so its requests are no longer read) and that took none of
    them for this long is stalled: drop it. While backed up, that check
    replaces the other three: its PINGs are not read either.
    Each is checked every ``tick`` seconds, so it fires up to one tick late.
    """

    heartbeat_ivl: float | None = CLIENT_PING_INTERVAL
    heartbeat_timeout: float | None = 30.0
    idle_timeout: float | None = None
    read_timeout: float | None = None
    write_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("heartbeat_ivl", "heartbeat_timeout", "idle_timeout", "read_timeout", "write_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None, got {value!r}")
        if self.heartbeat_ivl and self.heartbeat_timeout and self.heartbeat_ivl >= self.heartbeat_timeout:
            raise ValueError(f"heartbeat_ivl ({self.heartbeat_ivl:g} s) must be shorter than heartbeat_timeout "
                             f"({self.heartbeat_timeout:g} s)")

    @property
    def tick(self) -> float | None:
        """How often a connection checks its timers; None when every timer is off."""
        halves = [t / 2 for t in (self.heartbeat_timeout, self.idle_timeout, self.read_timeout, self.write_timeout)
                  if t]
        spans = [self.heartbeat_ivl, *halves] if self.heartbeat_ivl else halves
        return min(spans) if spans else None


class Budget:
    """The bytes buffered across a socket's connections, against ``limit``; ``holders``: who holds some.

    Past the limit the largest holder goes, not the newcomer: a few hogs
    must not lock every other client out.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a buffer budget must be >= 1 byte, got {limit}")
        self.limit = limit
        self.used = 0
        self.holders: set[object] = set()


class Limits(Protocol):
    """What a connection takes from the socket that owns it."""

    max_message_bytes: int
    max_buffer_bytes: int
    handshake_timeout: float
    timeouts: Timeouts
    budget: Budget | None
