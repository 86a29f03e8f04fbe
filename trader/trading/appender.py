"""Stream appends: the journal's XADDs on one dedicated Redis connection, pipelined, answered in order.

A journal append sits on the order path (place_order answers once its order is
durable), so it takes the shortest route there is: one TCP connection
that does nothing else, the command written to the socket at once and its reply
read by a protocol callback. Several appends may be in flight; Redis answers a
connection's commands in the order they came, so each reply resolves the oldest
waiting append. redis-py's client (a connection pool, a command layer, a parser
stream) costs several times that per command, and stays the journal's client
for everything else (reads, snapshots).

Failures come as redis-py's exceptions, so callers retry them as they would the
client's: ``redis.exceptions.ConnectionError`` when the connection cannot be
made or drops (every append in flight fails with it and the next one
reconnects), ``TimeoutError`` when Redis does not answer within ``timeout``
(the connection is dropped: a late reply must not answer a later command),
``ResponseError`` for an error reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any, cast

import redis.exceptions

log = logging.getLogger(__name__)

__all__ = ["StreamAppender", "command", "parse_reply"]

_CRLF = b"\r\n"


def command(*parts: bytes) -> bytes:
    """Return ``parts`` as one RESP command (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n" % len(part))
        out.append(part)
        out.append(_CRLF)
    return b"".join(out)


def parse_reply(buffer: bytearray) -> tuple[Any, int] | None:
    """Return the first complete RESP2 reply in ``buffer`` and its length, or None if it is incomplete.

    Simple strings and bulk strings are bytes, integers int, a nil bulk string
    None, an error a ``ResponseError`` instance (returned, not raised). Arrays
    are not parsed: the appender sends no command that answers with one.
    """
    end = buffer.find(_CRLF)
    if end < 0:
        return None
    kind, line = buffer[:1], bytes(buffer[1:end])
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buffer) < stop + 2:
            return None
        return bytes(buffer[end + 2:stop]), stop + 2
    if kind == b"+":
        return line, end + 2
    if kind == b":":
        return int(line), end + 2
    if kind == b"-":
        return redis.exceptions.ResponseError(line.decode("utf-8", "replace")), end + 2
    raise redis.exceptions.InvalidResponse(f"unexpected reply from Redis: {bytes(buffer[:end])!r:.80}")


class _Protocol(asyncio.Protocol):
    """The connection: writes commands, resolves the oldest waiting future with each reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer = bytearray()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; uvloop's do not subclass asyncio.Transport, so no isinstance check
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        try:
            while buffer:
                parsed = parse_reply(buffer)
                if parsed is None:
                    return
                value, size = parsed
                del buffer[:size]
                if not self.waiting:
                    raise redis.exceptions.InvalidResponse("a reply from Redis that no command asked for")
                future = self.waiting.popleft()
                if future.done():  # its caller gave up (cancelled)
                    continue
                if isinstance(value, redis.exceptions.ResponseError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except (redis.exceptions.InvalidResponse, ValueError) as exc:
            log.error("journal connection: %s; reconnecting", exc)
            self.abort(redis.exceptions.ConnectionError(f"bad reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def fail(self, error: Exception) -> None:
        if self.lost is None:
            self.lost = error
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)

    def abort(self, error: Exception) -> None:
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()

    @property
    def usable(self) -> bool:
        return self.lost is None and self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes) -> asyncio.Future[Any]:
        if not self.usable:
            raise redis.exceptions.ConnectionError(f"connection to Redis lost: {self.lost}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        self.waiting.append(future)
        return future


class StreamAppender:
    """XADD to Redis streams over one dedicated, pipelined connection (made on first use, re-made after a loss)."""

    def __init__(self, host: str, port: int, *, username: str | None = None, password: str | None = None,
                 db: int = 0, timeout: float | None = 5.0, connect_timeout: float | None = 5.0) -> None:
        self.host, self.port, self.db = host, port, db
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._auth = None if password is None else ((username.encode(),) if username else ()) + (password.encode(),)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    @property
    def connected(self) -> bool:
        """True if an XADD would go on the socket at once (else it waits for a connection when awaited)."""
        return self._protocol is not None and self._protocol.usable

    async def xadd(self, stream: bytes, fields: dict[bytes, bytes]) -> bytes:
        """Append an entry of ``fields`` to ``stream``; return its id once Redis has it."""
        return await self.xadd_now(stream, fields)

    def xadd_now(self, stream: bytes, fields: dict[bytes, bytes]) -> Coroutine[Any, Any, bytes]:
        """Write the XADD to the socket now, and return what to await for the entry's id.

        With no connection yet (or a lost one) it is written once the result
        is awaited, after connecting. Appends sent one after the other are
        pipelined and stored in that order; each result must be awaited.
        """
        parts = [b"XADD", stream, b"*"]
        for name, value in fields.items():
            parts += (name, value)
        data = command(*parts)
        protocol = self._protocol
        if protocol is None or not protocol.usable:
            return self._connect_and_send(data)
        return self._reply(protocol, protocol.send(data))

    async def _connect_and_send(self, data: bytes) -> bytes:
        protocol = await self._connect()
        return await self._reply(protocol, protocol.send(data))

    async def _reply(self, protocol: _Protocol, future: asyncio.Future[Any]) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                result = await future
        except TimeoutError:
            # The reply may still come: drop the connection so it cannot answer a later command.
            protocol.abort(redis.exceptions.TimeoutError("an earlier append timed out"))
            raise redis.exceptions.TimeoutError(f"Redis at {self.host}:{self.port} did not answer XADD within "
                                                f"{self.timeout:g} s") from None
        if not isinstance(result, bytes):
            raise redis.exceptions.InvalidResponse(f"XADD answered {result!r}, not an id")
        return result

    async def _connect(self) -> _Protocol:
        # Appends that find no connection share one attempt.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
                try:
                    if self._auth is not None:
                        await protocol.send(command(b"AUTH", *self._auth))
                    if self.db:
                        await protocol.send(command(b"SELECT", str(self.db).encode()))
                except BaseException:
                    protocol.abort(redis.exceptions.ConnectionError("handshake failed"))
                    raise
        except redis.exceptions.ResponseError as exc:
            raise redis.exceptions.AuthenticationError(f"Redis at {self.host}:{self.port} refused the journal "
                                                       f"connection: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise redis.exceptions.ConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: "
                                                   f"{exc or type(exc).__name__}") from None
        self._protocol = protocol
        return protocol

    async def close(self) -> None:
        """Close the connection (appends in flight fail); safe to call twice. A later append reconnects."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.fail(redis.exceptions.ConnectionError("journal connection closed"))
            protocol.transport.close()
