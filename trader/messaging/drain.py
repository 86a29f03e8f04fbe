"""Socket draining: read a ZeroMQ socket from the asyncio loop without a task per message.

ZeroMQ's file descriptor is edge-triggered: it signals once when the socket's
state changes, so a reader must receive until EAGAIN, and must look again after
every send on the same socket (a send can consume the edge). ``Drainer`` does
both, in bounded batches so a flood cannot starve the loop's other work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import zmq

DRAIN_BATCH = 1024


class Drainer:
    """Call ``handle`` with each message read from ``sock`` on the running loop."""

    def __init__(
        self,
        sock: zmq.Socket,
        handle: Callable[[Any], None],
        *,
        multipart: bool = False,
        batch: int = DRAIN_BATCH,
    ) -> None:
        self._sock = sock
        self._handle = handle
        self._recv = sock.recv_multipart if multipart else sock.recv
        self._batch = batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._scheduled = False

    def start(self) -> None:
        """Start reading; call from a coroutine on the loop that will own the socket."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._fd = int(self._sock.getsockopt(zmq.FD))  # an int option (pyzmq types any option int | bytes)
        self._loop.add_reader(self._fd, self._drain)
        self.kick()

    def stop(self) -> None:
        """Stop reading (the socket stays open); safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is not None and self._fd is not None and not loop.is_closed():
            loop.remove_reader(self._fd)

    def kick(self) -> None:
        """Schedule a drain on the next loop turn; call after sending on the socket."""
        if self._loop is not None and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        recv, handle = self._recv, self._handle
        for _ in range(self._batch):
            if self._loop is None or self._sock.closed:
                return
            try:
                message = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(message)
        self.kick()
