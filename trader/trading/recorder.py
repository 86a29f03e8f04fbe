"""The recorder: every book event goes to the journal in order, then to the bus.

ib_async reports order events through synchronous callbacks, while a journal
append is a Redis round trip. The recorder queues the broker's events and
appends them from one task, so the journal holds them in the order they
happened. :meth:`Recorder.write` appends at once and waits until the entry is
durable (the write-ahead of a new order before it is sent); :meth:`Recorder.record`
queues and does not wait.
An entry is published on the bus only once it is in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis.exceptions

from trader.trading.journal import Journal

log = logging.getLogger(__name__)

__all__ = ["Recorder"]

Publish = Callable[[str, Any], None]


class Recorder:
    """Ordered, single-writer journal appends with bus publication after each."""

    def __init__(self, journal: Journal, publish: Publish) -> None:
        self.journal = journal
        self.publish = publish
        self.failures = 0
        self._queue: asyncio.Queue[tuple[Mapping[str, Any], str | None, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def record(self, entry: Mapping[str, Any], topic: str | None = None, payload: Any = None) -> None:
        """Queue ``entry`` for the journal; publish ``payload`` on ``topic`` once it is written."""
        self._queue.put_nowait((dict(entry), topic, payload))

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

    async def _drain(self) -> None:
        while True:
            entry, topic, payload = await self._queue.get()
            try:
                await self._append(entry)
                if topic is not None:
                    try:
                        self.publish(topic, payload)
                    except Exception:
                        log.exception("publishing %s failed", topic)
            except Exception:
                self.failures += 1
                log.exception("journal append failed for a %s entry", entry.get("type"))
            finally:
                self._queue.task_done()

    async def _append(self, entry: Mapping[str, Any]) -> str:
        # Redis may blink (a restart under pycron): retry briefly rather than lose an event.
        delay = 0.05
        for attempt in range(8):
            try:
                return await self.journal.append(entry)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                if attempt == 7:
                    raise
                log.warning("journal append failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")
