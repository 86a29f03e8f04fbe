"""The recorder: every book event goes to the journal in order, then to the bus.

ib_async reports order events through synchronous callbacks, while a journal
append is a Redis round trip. The recorder queues the broker's events and
appends them from one task, so the journal holds them in the order they
happened. :meth:`Recorder.write` appends at once and waits until the entry is
durable; :meth:`Recorder.write_now` does so for several entries in one round
trip; :meth:`Recorder.record` queues and does not wait. A new order goes to
the broker first and to the journal once the broker has acknowledged it and
its caller has the answer (:meth:`Recorder.hold`, :meth:`Recorder.release`):
what is recorded about it meanwhile waits behind it. The task writes a moment
(``LINGER``) after an entry comes, so the caller's answer is not held up by
Redis, and what queued up travels to Redis together, in one pipeline (a group
commit). An entry is published on the bus only once it is in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.exceptions

from trader.errors import TraderError
from trader.retry import RetryPolicy
from trader.trading.journal import Journal

log = logging.getLogger(__name__)

__all__ = ["Recorder"]

Publish = Callable[[str, Any], None]
_Item = tuple[dict[str, Any], str | None, Any]  # an entry, and the topic and payload to publish once it is in
# Redis may blink (a restart under pycron) or be away for long: a queued broker event is retried until written
# (what queued behind it waits), never dropped.
_RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
DRAIN_BATCH = 256  # queued entries sent to Redis in one go
RETRY_FIRST, RETRY_MAX, RETRY_ATTEMPTS = 0.05, 2.0, 8  # an append's retries: ~5 s, then the caller decides
STOP_WAIT = 10.0  # seconds stop() waits for the queue to be written before it gives up on Redis
LINGER = 0.001
"""Seconds the task waits, once an entry comes after a quiet spell, before it writes (a group commit).

What is recorded while an order is placed (its acknowledgement, the order
itself) goes to Redis once the caller has had its answer and read it, not
while the caller waits; and a burst travels to Redis in one write."""


def _client_order_id(entry: Mapping[str, Any]) -> str | None:
    """Return the client order id an order or fill entry is about (None for other entries)."""
    about = entry.get("order") or entry.get("fill")
    return getattr(about, "client_order_id", None)


class Recorder:
    """Ordered, single-writer journal appends with bus publication after each."""

    def __init__(self, journal: Journal, publish: Publish, *, linger: float = LINGER) -> None:
        self.journal = journal
        self.linger = linger
        self.publish = publish
        self.failures = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._held: dict[str, list[_Item]] = {}  # client order id -> what was recorded meanwhile (see hold)
        self._writing = 0  # entries taken from the queue by the task and not yet written

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self, grace: float = 5.0) -> None:
        """Write what is queued, then stop; orders being placed get ``grace`` seconds to be released first."""
        if self._task is None:
            return
        deadline = asyncio.get_running_loop().time() + grace
        while self._held and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._held:  # the broker has them: reconcile adopts them at the next start
            log.warning("stopping with %d order(s) still being placed; not journalled", len(self._held))
        try:
            await asyncio.wait_for(self._queue.join(), STOP_WAIT)
        except TimeoutError:  # Redis away: the broker keeps the truth, and reconcile repairs the book at the next start
            log.error("stopping with %d journal entries unwritten (Redis unreachable)", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def pending(self) -> int:
        """Entries not yet in the journal: queued, being written, or parked behind an order being placed (see hold)."""
        return self._queue.qsize() + self._writing + sum(len(parked) + 1 for parked in self._held.values())

    def record(self, entry: Mapping[str, Any], topic: str | None = None, payload: Any = None) -> None:
        """Queue ``entry`` for the journal; publish ``payload`` on ``topic`` once it is written."""
        item = (dict(entry), topic, payload)
        parked = self._held.get(_client_order_id(entry) or "") if self._held else None
        if parked is not None:
            parked.append(item)
        else:
            self._queue.put_nowait(item)

    async def write(self, entry: Mapping[str, Any], topic: str | None = None, payload: Any = None) -> str:
        """Append ``entry`` now and return its journal id once durable; publish afterwards.

        It does not wait behind the queue: a write is for a new order (or a
        kill switch) that no queued entry concerns, and the entries about an
        order can only follow its write, since they come from the broker.
        """
        entry_id = await self._append(dict(entry))
        if topic is not None:
            self.publish(topic, payload)
        return entry_id

    async def write_now(self, entries: Iterable[Mapping[str, Any]]) -> list[str]:
        """Append ``entries`` now, in order and in one round trip (a bracket's orders); return their ids.

        As :meth:`write`, it does not wait behind the queue, and returns once
        all are durable. If one cannot be encoded, none is written
        (``ValidationError``). A failed append is retried as :meth:`write`'s
        are; nothing is published.
        """
        entries = [dict(entry) for entry in entries]
        try:
            replies: list[str | Exception] = await self.journal.append_many(entries)
        except _RETRYABLE as exc:
            log.warning("journal append failed (%s); retrying", exc)
            replies = [exc] * len(entries)
        ids = []
        for entry, reply in zip(entries, replies, strict=True):
            if isinstance(reply, _RETRYABLE):
                reply = await self._append(entry)
            elif isinstance(reply, Exception):
                raise reply
            ids.append(reply)
        return ids

    def hold(self, client_order_ids: Iterable[str]) -> None:
        """Park what is recorded about these orders until :meth:`release` queues their own entries first.

        For new orders sent to the broker before they are journalled (the
        broker is the source of truth: should the service die in between, IB
        reports them and reconcile adopts them): their statuses may come back
        before the placing call has answered, and must not reach the journal
        ahead of the orders.
        """
        for coid in client_order_ids:
            self._held.setdefault(coid, [])

    def holding(self, client_order_id: str) -> bool:
        """True while ``client_order_id`` is held (being placed: the journal does not have it yet)."""
        return client_order_id in self._held

    def release(self, entries: Iterable[Mapping[str, Any]], topic: str, payload: Any) -> None:
        """Queue ``entries`` (the held orders'), then what was parked for them; publish ``payload`` after the last."""
        own = [dict(entry) for entry in entries]
        parked = [item for entry in own for item in self._held.pop(_client_order_id(entry) or "", [])]
        for i, entry in enumerate(own):
            self._queue.put_nowait((entry, topic, payload) if i == len(own) - 1 else (entry, None, None))
        for item in parked:
            self._queue.put_nowait(item)

    async def _drain(self) -> None:
        # What queued up meanwhile goes to Redis at once, in one pipeline; each entry is still
        # published only once its own append is in, and in the order they came.
        while True:
            batch = [await self._queue.get()]
            if self.linger > 0:
                await asyncio.sleep(self.linger)
            while len(batch) < DRAIN_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._writing = len(batch)
            replies: list[str | Exception | None]
            try:
                replies = list(await self.journal.append_many([entry for entry, _, _ in batch]))
            except TraderError:  # one cannot be encoded: one at a time, so the others are still written
                replies = [None] * len(batch)
            except _RETRYABLE as exc:  # any of them may be in: written again in order, a replay takes the last
                log.warning("journal append failed (%s); retrying", exc)
                replies = [None] * len(batch)
            except Exception:  # not Redis's answer: one at a time, so what can be written still is
                log.exception("journal append of %d entries failed; appending them one at a time", len(batch))
                replies = [None] * len(batch)
            for (entry, topic, payload), reply in zip(batch, replies, strict=True):
                try:
                    if reply is None or isinstance(reply, _RETRYABLE):
                        await self._until_written(entry)
                    elif isinstance(reply, Exception):
                        raise reply
                    if topic is not None:
                        try:
                            self.publish(topic, payload)
                        except Exception:
                            log.exception("publishing %s failed", topic)
                except Exception:
                    self.failures += 1
                    log.exception("journal append failed for a %s entry", entry.get("type"))
                finally:
                    self._writing -= 1
                    self._queue.task_done()

    async def _until_written(self, entry: Mapping[str, Any]) -> str:
        """Append a broker event however long Redis is away: it must not be lost, and what queued behind it waits."""
        while True:
            try:
                return await self._append(entry)
            except _RETRYABLE as exc:
                log.error("journal unreachable (%s); %d entries wait for it; retrying", exc, self._queue.qsize() + 1)

    async def _append(self, entry: Mapping[str, Any]) -> str:
        policy = RetryPolicy(RETRY_FIRST, RETRY_MAX, attempts=RETRY_ATTEMPTS)
        return await policy.call(lambda: self.journal.append(entry), retry_on=_RETRYABLE, what="journal append",
                                 logger=log)
