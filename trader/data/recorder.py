"""The tick recorder: every ``tick.*`` message on the bus into the market store, in batches, none lost.

Receiving and writing are apart. The asyncio loop reads the bus (a SUB
socket of its own whose receive queue has no high-water mark, so ZeroMQ
never drops for it: a backlog waits in memory while the store is slow) and
adds each tick's payload, undecoded, to the *open batch* under its
instrument key (the topic's last part). Reading is all the loop does per
tick: the payloads are decoded a key at a time on the writer thread
(:mod:`trader.data.recorder_decode`), then appended
(:mod:`trader.data.recorder_writer`). The batch is handed to that one
writer thread when it holds half of ``batch_rows`` ticks or ``batch_seconds``
after its first tick. ``batch_rows`` bounds what the
recorder holds and has not stored: the open batch may hold ``batch_rows``
less the batch being written (or refused, waiting to be tried again). When
it is full the recorder stops reading the bus, so the backlog waits in
ZeroMQ's queue, and says it is behind (log and status) until the writer has
taken the batch; it drops nothing. So a kill -9 loses at most ``batch_rows``
ticks taken off the bus, counted (below); what ZeroMQ still queued for it
while the writer was behind dies with the process uncounted, as ticks in
flight in the bus proxy do (the bus carries no sequence to count them by).
Writing half-batches keeps the reading going while the writer writes.

A tick is one message ``tick.<source>.<key>`` whose payload is a dict keyed
like :class:`~trader.domain.Tick` (what trader_service publishes) or a Tick.
A message that is not one (no topic of a key here; on the writer: no
decodable payload, an instrument other than the topic's, a time that is
not a time, a price that is not a number) is counted, logged at a bounded
rate and skipped. A store keeps each key's
ticks in time order: a batch out of order is sorted, and ticks older than
the last one stored for the key (a second source of it, a clock stepped
back) are discarded, counted and logged. A write the store refuses
(``StorageError``: disk full, read-only) is kept and tried again a batch
interval later, the error in the status meanwhile; its ticks count against
``batch_rows``, so a store refusing for long holds the bus back, not memory.

:class:`~trader.data.recorder_counts.RecorderCounts` keeps the counts on
disk per tick, so after a kill -9 the next start knows how many were lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq

from trader.data.recorder_counts import RecorderCounts
from trader.data.recorder_decode import Batch
from trader.data.recorder_writer import TickWriter
from trader.data.store import MarketStore
from trader.messaging.curve import ClientKeys, secure_client
from trader.messaging.drain import Drainer
from trader.messaging.loopback import require_protected
from trader.messaging.pubsub import MAX_ROUTES, MAX_TOPIC, TOPIC_RE, check_topic
from trader.peer_text import LogThrottle, clip

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, burst=10, interval=60.0)  # anyone on the host can publish: bound what that logs

__all__ = ["Batch", "TickRecorder"]

_RECEIVED = 1  # the received count's slot in RecorderCounts.slots
_INVALID = ""  # a cached topic that is not recorded


class TickRecorder:
    """Record the bus's ticks into ``store``; see the module docstring.

    Call :meth:`listen` from a coroutine on the loop that will own the
    socket, and :meth:`close` to stop: it writes everything received first.
    """

    def __init__(self, store: MarketStore, counts: RecorderCounts, *, batch_rows: int = 50_000,
                 batch_seconds: float = 5.0) -> None:
        self.store = store
        self.counts = counts
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self._write_rows = max(1, batch_rows // 2)  # an idle writer takes the open batch at this size
        self._room = batch_rows  # the open batch's limit: batch_rows less the batch being written
        self.bad = 0  # messages skipped as malformed here (no key in their topic); the writer counts the rest
        self.behind = False  # the open batch is full while the writer is busy: the bus is not read
        self.writer = TickWriter(store, counts, retry_seconds=batch_seconds)  # runs on the writer thread only
        self._open = Batch()
        self._slots = counts.slots  # bumped inline per tick: the hot path
        self._writing: asyncio.Future[Batch | None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hold_until = 0.0  # after a failed write: no new one before this (monotonic)
        self._keys: dict[bytes, str] = {}  # topic bytes -> the key its payload must name (or _INVALID)
        self._patterns: tuple[str, ...] = ()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tick-writer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: zmq.Socket | None = None
        self._drainer: Drainer | None = None
        self._closed = False  # the writer is gone
        self._paused_at = 0.0  # time.monotonic() when the bus reading was last paused

    # -- the bus ---------------------------------------------------------------------------
    def listen(self, endpoint: str, topics: Iterable[str], *, curve: ClientKeys | None = None,
               context: zmq.Context | None = None) -> None:
        """Subscribe to ``topics`` (prefixes such as ``tick``) on the bus at ``endpoint`` and start recording."""
        require_protected(endpoint, "tick recorder subscribing to", protected=curve is not None)
        self._patterns = tuple(check_topic(t) for t in topics)
        self._loop = asyncio.get_running_loop()
        sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)  # no limit: a backlog waits here rather than being dropped
        if curve is not None:
            secure_client(sock, curve)
        sock.connect(endpoint)
        for pattern in self._patterns:
            sock.setsockopt(zmq.SUBSCRIBE, pattern.encode() + b".")
        self._sock = sock
        self._drainer = Drainer(sock, self.on_frame)
        self._drainer.start()
        log.info("recording %s from %s: batches of %d ticks or %g s", ", ".join(f"{p}.*" for p in self._patterns),
                 endpoint, self.batch_rows, self.batch_seconds)

    def on_frame(self, data: bytes) -> None:
        """Take one bus frame (``topic \\0 payload``) into the open batch, or count it as malformed."""
        sep = data.find(b"\x00")
        raw_topic = data[:sep] if sep > 0 else b""
        expected = self._keys.get(raw_topic)
        if expected is None:
            expected = self._key_of(raw_topic)
        if not expected:
            self._bad("not a tick topic", data)
            return
        batch = self._open
        bodies = batch.keys.get(expected)
        if bodies is None:
            bodies = batch.keys[expected] = []
        bodies.append(data[sep + 1:])  # decoded on the writer thread, a key at a time
        batch.size += 1
        self._slots[_RECEIVED] += 1
        if batch.size == 1:
            batch.since = time.monotonic()
            if self._loop is not None:
                self._timer = self._loop.call_later(self.batch_seconds, self._hand_over)
        if batch.size == self._write_rows or batch.size >= self._room:
            self._hand_over()  # a busy writer: at the room's end the bus waits (its done callback hands over)

    def _key_of(self, raw_topic: bytes) -> str:
        """Return the key a topic's payload must name (``tick.<source>.<key>``), or ``_INVALID``; cached."""
        key = _INVALID
        if len(raw_topic) <= MAX_TOPIC:
            topic = raw_topic.decode("ascii", "replace")
            parts = topic.split(".", 2)
            if (TOPIC_RE.match(topic) and len(parts) == 3
                    and any(topic.startswith(p + ".") for p in self._patterns)):
                key = parts[2]
            if len(self._keys) >= MAX_ROUTES:
                self._keys.clear()
            self._keys[raw_topic] = key
        return key

    def _bad(self, reason: str, data: bytes) -> None:
        self.bad += 1
        _throttle.log(logging.WARNING, "bad tick", "skipped a malformed bus message (%d so far): %s; first bytes %s",
                      self.bad, clip(reason, 200), clip(data[:48]))

    # -- batches -------------------------------------------------------------------------
    def _hand_over(self, *, force: bool = False) -> None:
        """Give the open batch to the writer if it is free (else it grows); ``force``: even while holding off."""
        batch = self._open
        if self._writing is not None or self._closed or (not force and time.monotonic() < self._hold_until):
            if batch.size >= self._room:
                self._pause()
            return
        if not batch.size:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._open = Batch()
        self._room = max(0, self.batch_rows - batch.size)
        self._writing = self._loop.run_in_executor(self._pool, self.writer.write, batch)
        self._writing.add_done_callback(self._written)
        if self._room:
            self._resume()
        else:
            self._pause()

    def _pause(self) -> None:
        """Stop reading the bus: the writer is behind, the backlog waits in ZeroMQ's queue."""
        if self._drainer is not None and not self.behind and self._sock is not None:
            self._drainer.stop()
            self.behind = True
            self._paused_at = time.monotonic()
            log.warning("the store writer is behind: %d ticks unstored, the bus waits in ZeroMQ (none dropped)",
                        self._open.size + self.batch_rows - self._room)

    def _resume(self) -> None:
        """Read the bus again (after :meth:`_pause`)."""
        if self.behind and self._drainer is not None and self._sock is not None:
            self.behind = False
            self._drainer.start()
            log.info("the store writer caught up after %.1f s", time.monotonic() - self._paused_at)

    def _written(self, future: asyncio.Future[Batch | None]) -> None:
        self._writing = None
        try:
            left = future.result()
        except Exception as exc:  # _write catches the store's errors: this is a bug, said loudly
            log.exception("the tick writer failed")
            self.writer.last_error = f"{type(exc).__name__}: {exc}"
            return
        if left is not None:  # the store refused: try again a batch interval later, oldest ticks first
            self._open.put_back(left)  # still within batch_rows: the open batch had the room left by it
            self._room = self.batch_rows
            self._hold_until = time.monotonic() + self.batch_seconds
            if self._open.size >= self._room:
                self._pause()
            if self._loop is not None:
                self._loop.call_later(self.batch_seconds, self._hand_over)
            return
        batch = self._open
        self._room = self.batch_rows
        if batch.size >= self._write_rows or (batch.size and time.monotonic() - batch.since >= self.batch_seconds):
            self._hand_over()
        else:
            self._resume()

    # -- stop and status -------------------------------------------------------------------
    async def close(self, *, attempts: int = 3) -> None:
        """Stop receiving, write everything received (what is queued in the socket too), then release all.

        A store that still refuses after ``attempts`` writes loses the rest, said at ERROR with the
        count (and counted on disk: the next start reports it).
        """
        if self._drainer is not None:
            self._drainer.stop()
        if self._sock is not None:
            sock, self._sock = self._sock, None
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:  # what the socket already holds was received: it is written too
                try:
                    self.on_frame(sock.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
            sock.close()
        if self._timer is not None:
            self._timer.cancel()
        tries = 0
        while self._writing is not None or self._open.size:
            if self._writing is not None:
                await asyncio.wait([self._writing])
                await asyncio.sleep(0)  # its done callback has run
                continue
            if tries == attempts:
                log.error("%d ticks could not be stored before stopping: lost (%s)", self._open.size, self.last_error)
                break
            tries += 1
            self._hand_over(force=True)
        self._closed = True
        self._pool.shutdown(wait=True)
        log.info("tick recorder stopped: %d ticks received, %d written, %d discarded, %d malformed skipped",
                 self.counts.received, self.counts.written, self.counts.discarded, self.malformed)
        self.counts.close()

    @property
    def last_error(self) -> str | None:
        """Return the store's last refusal (or the writer's failure), None since a write succeeded."""
        return self.writer.last_error

    @property
    def malformed(self) -> int:
        """Return the messages skipped as not ticks: here (their topic) and on the writer (their payload)."""
        return self.bad + self.counts.malformed

    def status(self) -> dict[str, Any]:
        """Return the counts, the batch in hand and whether the writer keeps up."""
        counts = self.counts
        return {"received": counts.received, "written": counts.written, "discarded": counts.discarded,
                "pending": counts.pending, "open_batch": self._open.size, "writing": self._writing is not None,
                "batches": self.writer.batches, "malformed": self.malformed, "reordered": self.writer.reordered,
                "behind": self.behind, "last_error": self.last_error,
                "last_write_ms": round(self.writer.last_write_seconds * 1000, 1),
                "previous_lost": counts.previous_lost}

