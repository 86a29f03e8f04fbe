"""The tick recorder: every ``tick.*`` message on the bus into the market store, in batches, none lost.

Receiving and writing are apart. The asyncio loop reads the bus (a SUB
socket of its own whose receive queue has no high-water mark, so ZeroMQ
never drops for it: a backlog waits in memory while the store is slow) and
adds each tick to the *open batch*: per instrument key, its times and its
seven :data:`~trader.data.frames.TICK_COLUMNS`. The batch is handed to one
writer thread when it holds half of ``batch_rows`` ticks or ``batch_seconds``
after its first tick; the writer turns each key's ticks into a frame and
appends it with ``store.append_ticks`` (the first write of a key in a run with
its metadata: source ``recorder``, the exchange's time zone). ``batch_rows`` bounds what the
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
A message that is not one (no decodable payload, an instrument other than
the topic's, a time that is not a time, a price that is not a number) is
counted, logged at a bounded rate and skipped. A store keeps each key's
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
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import msgpack
import numpy as np
import pandas as pd
import zmq

from trader.data.calendars import calendar_for_key
from trader.data.frames import TICK_COLUMNS
from trader.data.recorder_counts import RecorderCounts
from trader.data.store import MarketStore, SymbolMeta
from trader.errors import NotFound, ProtocolError, StorageError, ValidationError
from trader.messaging import codec
from trader.messaging.curve import ClientKeys, secure_client
from trader.messaging.drain import Drainer
from trader.messaging.loopback import require_protected
from trader.messaging.pubsub import MAX_ROUTES, MAX_TOPIC, TOPIC_RE, check_topic
from trader.peer_text import LogThrottle, clip

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, burst=10, interval=60.0)  # anyone on the host can publish: bound what that logs

__all__ = ["Batch", "TickRecorder"]

_fields = itemgetter("instrument", "time", *TICK_COLUMNS)
_unpackb = msgpack.unpackb
_NUMBERS = frozenset({float, int, type(None)})
_MAX_NS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_RECEIVED = 1  # the received count's slot in RecorderCounts.slots
_INVALID = ""  # a cached topic that is not recorded


class Batch:
    """Ticks received and not yet stored: per key, their times and their :data:`TICK_COLUMNS` values."""

    __slots__ = ("keys", "since", "size")

    def __init__(self) -> None:
        # key -> (times in ns, the ticks' TICK_COLUMNS values one after another: 7 per tick)
        self.keys: dict[str, tuple[list[int], list[float | int | None]]] = {}
        self.size = 0
        self.since = 0.0  # time.monotonic() of its first tick

    def put_back(self, older: Batch) -> None:
        """Put ``older``'s unwritten ticks in front of this batch's (a write that failed)."""
        for key, (times, rows) in older.keys.items():
            mine = self.keys.get(key)
            self.keys[key] = (times + mine[0], rows + mine[1]) if mine else (times, rows)
        self.since = min(self.since, older.since) if self.size else older.since
        self.size += older.size


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
        self.bad = 0  # messages skipped as malformed
        self.reordered = 0  # ticks that came out of time order within a batch (sorted, kept)
        self.batches = 0  # writes done
        self.behind = False  # the open batch is full while the writer is busy: the bus is not read
        self.last_error: str | None = None  # the store's last refusal, until a write succeeds
        self.last_write_seconds = 0.0
        self._open = Batch()
        self._slots = counts.slots  # bumped inline per tick: the hot path
        self._writing: asyncio.Future[Batch | None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hold_until = 0.0  # after a failed write: no new one before this (monotonic)
        self._keys: dict[bytes, str] = {}  # topic bytes -> the key its payload must name (or _INVALID)
        self._patterns: tuple[str, ...] = ()
        self._last: dict[str, int | None] = {}  # key -> the last stored tick's time (ns); writer thread only
        self._described: set[str] = set()  # keys whose metadata this recorder has given the store
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
        body = data[sep + 1:]
        # The hot path: trader_service's tick, a dict of every field, its time straight to int nanoseconds.
        try:
            row = _fields(_unpackb(body, timestamp=2))
        except Exception:  # noqa: BLE001 - not that shape: the general path below decides
            row = None
        if (row is None or row[0] != expected or type(row[1]) is not int or not 0 < row[1] < _MAX_NS
                or not _NUMBERS.issuperset(map(type, values := row[2:]))):
            row = self._general(expected, body, data)
            if row is None:
                return
            values = row[2:]
        batch = self._open
        columns = batch.keys.get(expected)
        if columns is None:
            columns = batch.keys[expected] = ([], [])
        columns[0].append(row[1])
        columns[1].extend(values)
        batch.size += 1
        self._slots[_RECEIVED] += 1
        if batch.size == 1:
            batch.since = time.monotonic()
            if self._loop is not None:
                self._timer = self._loop.call_later(self.batch_seconds, self._hand_over)
        if batch.size == self._write_rows or batch.size >= self._room:
            self._hand_over()  # a busy writer: at the room's end the bus waits (its done callback hands over)

    def _general(self, expected: str, body: bytes, data: bytes) -> tuple[Any, ...] | None:
        """Return (instrument, ns, *values) of any payload the codec decodes to a tick, or count it as malformed."""
        try:
            payload = codec.decode(body)
        except ProtocolError as exc:
            self._bad(f"undecodable payload: {exc}", data)
            return None
        if isinstance(payload, dict):
            instrument, stamp = payload.get("instrument"), payload.get("time")
            values = tuple(payload.get(c) for c in TICK_COLUMNS)
        else:
            instrument, stamp = getattr(payload, "instrument", None), getattr(payload, "time", None)
            values = tuple(getattr(payload, c, None) for c in TICK_COLUMNS)
        if instrument != expected:
            self._bad(f"not a tick of {expected} (instrument {clip(instrument, 40)})", data)
            return None
        if isinstance(stamp, pd.Timestamp):
            ns = stamp.value if stamp.tzinfo is not None else None
        elif isinstance(stamp, datetime):
            ns = (stamp - _EPOCH) // _ONE_US * 1000 if stamp.tzinfo is not None else None
        else:
            ns = None
        if ns is None or not 0 < ns < _MAX_NS:
            self._bad(f"not a tick (time {clip(stamp, 40)})", data)
            return None
        if not _NUMBERS.issuperset(map(type, values)):
            self._bad("not a tick (a price or size that is not a number)", data)
            return None
        return (instrument, ns, *values)

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
        self._writing = self._loop.run_in_executor(self._pool, self._write, batch)
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
            self.last_error = f"{type(exc).__name__}: {exc}"
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

    def _write(self, batch: Batch) -> Batch | None:
        """Append each key's ticks (the writer thread); return what the store refused, or None."""
        started = time.perf_counter()
        for key in list(batch.keys):
            times, rows = batch.keys[key]
            try:
                self._write_key(key, times, rows)
            except StorageError as exc:
                self.last_error = str(exc)
                log.error("%d ticks not stored yet, tried again in %g s: %s", batch.size, self.batch_seconds, exc)
                return batch
            except Exception:  # a bug, not the store: these ticks would fail again, so they go, said loudly
                log.exception("%s: %d ticks cannot be stored and are discarded", key, len(times))
                self.counts.add_discarded(len(times))
            del batch.keys[key]
            batch.size -= len(times)
        self.batches += 1
        self.last_error = None
        self.last_write_seconds = time.perf_counter() - started
        return None

    def _write_key(self, key: str, times: list[int], flat: list[float | int | None]) -> None:
        stamps = np.array(times, dtype="int64")
        index = pd.DatetimeIndex(stamps.view("datetime64[ns]"), name="time").tz_localize("UTC")
        values = np.array(flat, dtype="float64").reshape(len(times), len(TICK_COLUMNS))  # None -> NaN
        moved = 0
        if not index.is_monotonic_increasing:
            order = np.argsort(stamps, kind="stable")
            moved = int(np.count_nonzero(order != np.arange(len(order))))
            index, values, stamps = index[order], values[order], stamps[order]
        if key not in self._last:
            self._last[key] = self._stored_last(key, index[0])
        last = self._last[key]
        dropped = 0
        if last is not None and stamps[0] < last:
            keep = stamps >= last
            dropped = len(stamps) - int(np.count_nonzero(keep))
            index, values = index[keep], values[keep]
        if len(index):
            meta = None if key in self._described else _tick_meta(key)  # merged into the stored: once per run
            self.store.append_ticks(key, pd.DataFrame(values, index=index, columns=list(TICK_COLUMNS)), meta=meta)
            self._described.add(key)
            self._last[key] = int(index.asi8[-1])
            self.counts.add_written(len(index))
        # Counted once the store has the rest: a refused write is tried again with the same ticks.
        self.reordered += moved
        if dropped:
            self.counts.add_discarded(dropped)
            _throttle.log(logging.WARNING, f"older {key}", "%s: discarded %d ticks older than the last stored (%s)",
                          key, dropped, pd.Timestamp(last, tz="UTC").isoformat())

    def _stored_last(self, key: str, first: pd.Timestamp) -> int | None:
        """Return the time (ns) of ``key``'s last stored tick at or after ``first``, None if there is none."""
        try:
            stored = self.store.read_ticks(key, start=first)
        except NotFound:
            return None
        return int(stored.index.asi8[-1]) if len(stored) else None

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
                 self.counts.received, self.counts.written, self.counts.discarded, self.bad)
        self.counts.close()

    def status(self) -> dict[str, Any]:
        """Return the counts, the batch in hand and whether the writer keeps up."""
        counts = self.counts
        return {"received": counts.received, "written": counts.written, "discarded": counts.discarded,
                "pending": counts.pending, "open_batch": self._open.size, "writing": self._writing is not None,
                "batches": self.batches, "malformed": self.bad, "reordered": self.reordered,
                "behind": self.behind, "last_error": self.last_error,
                "last_write_ms": round(self.last_write_seconds * 1000, 1),
                "previous_lost": counts.previous_lost}


def _tick_meta(key: str) -> SymbolMeta:
    """Return what the store keeps beside ``key``'s recorded ticks: the recorder, the exchange's time zone."""
    try:
        timezone = calendar_for_key(key).timezone
    except (ValidationError, ValueError):  # no calendar for it, or not a contract key
        timezone = ""
    return SymbolMeta(key=key, source="recorder", timezone=timezone)
