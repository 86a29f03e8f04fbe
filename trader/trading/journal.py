"""Journal: the trader service's crash-safe, append-only log of order events, in a Redis stream.

One stream entry per event; its payload is ``codec.encode(entry)`` in the
stream field ``e``. An entry is a dict with a ``"type"`` key:

* ``{"type": "order", "order": Order, "event": str, "reason": str}`` -- a full
  snapshot of the order after a change (``event``: "submitted", "status",
  "modified", "rejected", "reconciled", ...);
* ``{"type": "fill", "fill": Fill}``;
* ``{"type": "kill_switch", "engaged": bool, "reason": str}``;
* ``{"type": "reconcile", "differences": list[dict]}``.

:meth:`Journal.append` adds ``"time"`` (aware UTC) when the entry has none.
Redis runs with AOF on, so an entry is durable once ``XADD`` returns (within
the server's fsync policy). Reading never stops at a bad entry: one that does
not decode to a dict with a ``"type"`` is logged with its stream id, counted
in :attr:`Journal.corrupt` and skipped. Snapshots (``save_snapshot``) are
plain keys holding codec bytes, for whatever state a reader wants to resume
from (e.g. the last stream id it had applied).

The client must return bytes (``decode_responses=False``, redis-py's default):
the payloads are msgpack, not text. Appends go through a
:class:`~trader.trading.appender.StreamAppender` to the same server: one at a
time, in the order they were asked for, a batch in one round trip, and
without redis-py's own retries (the recorder decides). :meth:`Journal.close`
closes its connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeAlias, cast

import redis.asyncio

from trader.domain.checks import utc_now
from trader.errors import ConfigError, ProtocolError, ValidationError
from trader.messaging import codec
from trader.trading.appender import StreamAppender

__all__ = ["FIELD", "Journal"]

log = logging.getLogger(__name__)

FIELD = b"e"
"""The stream field holding an entry's codec bytes."""


_Entries: TypeAlias = list[tuple[bytes, dict[bytes, bytes]]]  # XRANGE's answer: (id, fields) oldest first


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


class Journal:
    """An append-only journal of entry dicts in the Redis stream ``stream``."""

    def __init__(self, client: redis.asyncio.Redis, stream: str) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigError("Journal needs a Redis client with decode_responses=False")
        if not isinstance(stream, str) or not stream:
            raise ValidationError(f"Journal stream must be a non-empty string, got {stream!r}")
        self.client = client
        self.stream = stream
        self._stream = stream.encode()
        self._appender = StreamAppender(client)
        self._corrupt_ids: set[str] = set()

    @property
    def corrupt(self) -> int:
        """Return how many distinct entries failed to decode (each was logged and skipped)."""
        return len(self._corrupt_ids)

    async def append(self, entry: Mapping[str, Any]) -> str:
        """Append ``entry`` (it must have a ``"type"``); return its stream id once durable.

        Raises ``ValidationError`` if the entry has no type or holds a value the
        codec cannot carry; nothing is written then. Redis's failures come as
        redis-py's exceptions (``ConnectionError``, ``TimeoutError``, ``ResponseError``).
        """
        return _text(await self._appender.xadd(self._stream, {FIELD: codec.encode(self._stamped(entry))}))

    @property
    def connected(self) -> bool:
        """False from an append that could not reach Redis until one does again (True before any)."""
        return self._appender.connected

    async def append_many(self, entries: Sequence[Mapping[str, Any]]) -> list[str | Exception]:
        """Append ``entries`` in order, in one round trip; return each one's stream id, or Redis's error reply.

        All are encoded first: if one cannot be (``ValidationError``), none is
        sent. Raises ``ConnectionError`` or ``TimeoutError`` when Redis cannot
        be reached or does not answer: then any of them may be stored or not.
        """
        payloads = [codec.encode(self._stamped(entry)) for entry in entries]
        replies = await self._appender.xadd_many(self._stream, [{FIELD: payload} for payload in payloads])
        return [reply if isinstance(reply, Exception) else _text(reply) for reply in replies]

    @staticmethod
    def _stamped(entry: Mapping[str, Any]) -> dict[str, Any]:
        kind = entry.get("type") if isinstance(entry, Mapping) else None
        if not isinstance(kind, str) or not kind:
            raise ValidationError(f"journal entry needs a non-empty 'type', got {entry!r}")
        data = dict(entry)
        if data.get("time") is None:
            data["time"] = utc_now()
        return data

    async def close(self) -> None:
        """Close the append connection (the client is the caller's); safe to call twice."""
        await self._appender.close()

    async def entries(
        self, after: str = "-", page: int = 1000
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield ``(stream_id, entry)`` oldest first, for the entries after the id ``after``.

        ``after="-"`` starts at the beginning. The stream is read ``page``
        entries per ``XRANGE``, so a long journal is never loaded at once;
        entries appended while iterating are yielded too.
        """
        if page < 1:
            raise ValidationError(f"page must be >= 1, got {page}")
        start = "-" if after == "-" else f"({after}"
        while True:
            # redis' stubs answer for any client (str or None ids and fields); this one gives bytes (__init__)
            batch = cast(_Entries, await self.client.xrange(self.stream, min=start, max="+", count=page))
            for raw_id, fields in batch:
                stream_id = _text(raw_id)
                entry = self._decode(stream_id, fields)
                if entry is not None:
                    yield stream_id, entry
            if len(batch) < page:
                return
            start = f"({_text(batch[-1][0])}"

    def _decode(self, stream_id: str, fields: Mapping[Any, Any]) -> dict[str, Any] | None:
        payload = fields.get(FIELD)
        try:
            if payload is None:
                raise ProtocolError(f"no {FIELD.decode()!r} field")
            entry = codec.decode(payload)
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                raise ProtocolError(f"not an entry dict with a 'type': {entry!r:.200}")
        except ProtocolError as exc:
            if stream_id not in self._corrupt_ids:
                self._corrupt_ids.add(stream_id)
                log.error("journal %s: skipping corrupt entry %s: %s", self.stream, stream_id, exc)
            return None
        return entry

    async def length(self) -> int:
        """Return the number of entries in the stream (corrupt ones included)."""
        return int(await self.client.xlen(self.stream))

    async def save_snapshot(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` (a dict the codec can carry) under the Redis key ``key``."""
        await self.client.set(key, codec.encode(dict(value)))

    async def load_snapshot(self, key: str) -> dict[str, Any] | None:
        """Return the snapshot stored under ``key``, or ``None`` if there is none.

        Raises ``ProtocolError`` naming the key if the stored bytes are not a
        codec dict: a caller falls back to a full replay rather than trusting it.
        """
        data = cast(bytes | None, await self.client.get(key))  # bytes: no decode_responses (see __init__)
        if data is None:
            return None
        try:
            value = codec.decode(data)
        except ProtocolError as exc:
            raise ProtocolError(f"snapshot {key!r} is corrupt: {exc}") from exc
        if not isinstance(value, dict):
            raise ProtocolError(f"snapshot {key!r} is a {type(value).__name__}, not a dict")
        return value
