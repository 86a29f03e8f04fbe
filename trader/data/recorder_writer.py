"""The tick recorder's writer: a batch's payloads, decoded per key, appended to the store in time order.

One :class:`TickWriter` runs on the recorder's writer thread (one batch at
a time). Per key it decodes the batch's payloads
(:func:`~trader.data.recorder_decode.decode`: malformed ones counted and
skipped), sorts them by time if they came out of order, drops those older
than the key's last stored tick (counted as discarded), and appends the rest
with ``store.append_ticks`` (the first write of a key in a run with its
metadata: source ``recorder``, the exchange's time zone). A ``StorageError``
stops the batch: what is left is handed back to be tried again, its
malformed payloads already taken out so they are counted once.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from trader.data.calendars import calendar_for_key
from trader.data.frames import TICK_COLUMNS
from trader.data.recorder_counts import RecorderCounts
from trader.data.recorder_decode import Batch, decode
from trader.data.store import MarketStore, SymbolMeta
from trader.errors import NotFound, StorageError, ValidationError
from trader.peer_text import LogThrottle, clip

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, burst=10, interval=60.0)  # anyone on the host can publish: bound what that logs

__all__ = ["TickWriter"]


class TickWriter:
    """Write batches of ticks into ``store``, counting in ``counts``; see the module docstring."""

    def __init__(self, store: MarketStore, counts: RecorderCounts, *, retry_seconds: float) -> None:
        self.store = store
        self.counts = counts
        self.retry_seconds = retry_seconds  # said in the log when a write is refused
        self.reordered = 0  # ticks that came out of time order within a batch (sorted, kept)
        self.batches = 0  # writes done
        self.last_error: str | None = None  # the store's last refusal, until a write succeeds
        self.last_write_seconds = 0.0
        self._last: dict[str, int | None] = {}  # key -> the last stored tick's time (ns)
        self._described: set[str] = set()  # keys whose metadata this recorder has given the store

    def write(self, batch: Batch) -> Batch | None:
        """Append each key's ticks; return what the store refused (to be tried again), or None."""
        started = time.perf_counter()
        for key in list(batch.keys):
            bodies = batch.keys[key]
            times, values, good = decode(key, bodies, self._bad)
            try:
                self._write_key(key, times, values)
            except StorageError as exc:
                self.last_error = str(exc)
                batch.size -= len(bodies) - len(good)  # the malformed are counted: not again
                batch.keys[key] = good
                log.error("%d ticks not stored yet, tried again in %g s: %s", batch.size, self.retry_seconds, exc)
                return batch
            except Exception:  # a bug, not the store: these ticks would fail again, so they go, said loudly
                log.exception("%s: %d ticks cannot be stored and are discarded", key, len(good))
                self.counts.add_discarded(len(good))
            del batch.keys[key]
            batch.size -= len(bodies)
        self.batches += 1
        self.last_error = None
        self.last_write_seconds = time.perf_counter() - started
        return None

    def _bad(self, reason: str, body: bytes) -> None:
        """Count and log (at a bounded rate) one payload that is not a tick."""
        self.counts.add_malformed(1)
        _throttle.log(logging.WARNING, "bad tick", "skipped a malformed bus message (%d so far): %s; first bytes %s",
                      self.counts.malformed, clip(reason, 200), clip(body[:48]))

    def _write_key(self, key: str, stamps: np.ndarray, values: np.ndarray) -> None:
        if not len(stamps):
            return
        moved = 0
        if (np.diff(stamps) < 0).any():
            order = np.argsort(stamps, kind="stable")
            moved = int(np.count_nonzero(order != np.arange(len(order))))
            values, stamps = values[order], stamps[order]
        index = pd.DatetimeIndex(stamps.view("datetime64[ns]"), name="time").tz_localize("UTC")
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


def _tick_meta(key: str) -> SymbolMeta:
    """Return what the store keeps beside ``key``'s recorded ticks: the recorder, the exchange's time zone."""
    try:
        timezone = calendar_for_key(key).timezone
    except (ValidationError, ValueError):  # no calendar for it, or not a contract key
        timezone = ""
    return SymbolMeta(key=key, source="recorder", timezone=timezone)
