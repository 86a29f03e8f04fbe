"""Stream appends: the journal's XADDs through redis-py, one at a time, in order, a batch in one round trip.

The journal's appends are off the order path (the desk answers before its
order is appended, and the recorder writes a moment later), so they go
through redis-py like every other Redis call: a batch is one pipeline
(``transaction=False``: the XADDs travel together, each stored on its own),
a single entry one command. Until issue 15 a hand-written RESP client did
this on a connection of its own; redis-py's pipeline costs more CPU per batch
(docs/ARCHITECTURE.md has the numbers) and nothing measurable on the round trip.

Two things are kept from it. The appends are serialized: each waits for the
one before it to be answered, so Redis stores them in the order they were
asked for, whichever connection they take. And redis-py does not retry
them itself (its client would, by default): the recorder's retry policy is
the only one, so a failure reaches it at once. Failures come as redis-py's
exceptions: ``ConnectionError`` when Redis cannot be reached or the connection
drops (the next append connects again), ``TimeoutError`` when it does not
answer within the client's ``socket_timeout``, ``ResponseError`` for an error
reply (in a batch, for that entry only).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

__all__ = ["StreamAppender"]

# What a connection of the caller's client is made with, and nothing of its pool's own machinery.
_CONNECTION_KEYS = frozenset({"host", "port", "path", "db", "username", "password", "credential_provider",
                              "socket_timeout", "socket_connect_timeout", "socket_keepalive", "client_name"})
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _without_retries(client: redis.asyncio.Redis) -> redis.asyncio.Redis:
    """Return a client of its own to the server ``client`` talks to, with redis-py's retries off."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _CONNECTION_KEYS or k.startswith("ssl")}
    return redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool(
        connection_class=pool.connection_class, retry=Retry(NoBackoff(), 0), **kwargs))


class StreamAppender:
    """XADD to Redis streams through redis-py: serialized, batches pipelined, no retries of its own."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = _without_retries(client)
        self._turn = asyncio.Lock()
        self._reached = True

    @property
    def connected(self) -> bool:
        """False from an append that could not reach Redis until one does again (True before any)."""
        return self._reached

    async def xadd(self, stream: bytes, fields: dict[bytes, bytes]) -> bytes:
        """Append an entry of ``fields`` to ``stream``; return its id once Redis has it."""
        async with self._turn:
            try:
                # redis' stubs: fields is an invariant Dict of any field type, the answer bytes | str
                # (bytes here: the client has no decode_responses)
                entry_id: bytes = await self._client.xadd(stream, fields)  # type: ignore[arg-type, assignment]
            except _UNREACHABLE:
                self._reached = False
                raise
        self._reached = True
        return entry_id

    async def xadd_many(self, stream: bytes, entries: Sequence[dict[bytes, bytes]]) -> list[bytes | Exception]:
        """Append ``entries`` to ``stream`` in one round trip; return each one's id, or its error reply.

        Raises ``ConnectionError`` or ``TimeoutError`` when the batch as a whole
        fails: then any of its entries may or may not be stored.
        """
        if len(entries) <= 1:  # a command costs less than a pipeline of one
            try:
                return [await self.xadd(stream, fields) for fields in entries]
            except redis.exceptions.ResponseError as exc:
                return [exc]
        async with self._turn:
            pipe = self._client.pipeline(transaction=False)
            for fields in entries:
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            try:
                replies: list[bytes | Exception] = await pipe.execute(raise_on_error=False)
            except _UNREACHABLE:
                self._reached = False
                raise
        self._reached = True
        return replies

    async def close(self) -> None:
        """Close the connection; safe to call twice. A later append connects again."""
        await self._client.connection_pool.disconnect()
