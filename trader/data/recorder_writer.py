"""The tick recorder's writer: a batch's payloads, decoded per key, appended to the store in time order.

One :class:`TickWriter` runs on the recorder's writer thread (one batch at
a time). Per key it decodes the batch's payloads
(:func:`~trader.data.recorder_decode.decode`: malformed ones counted and
skipped), sorts them by time if they came out of order, drops those older
than the key's last stored tick (counted as discarded), and appends the rest
(the first write of a key in a run with its metadata: source ``recorder``,
the exchange's time zone), every key of the batch in one
``store.append_ticks_many`` call: ArcticDB's cost per append
(milliseconds whatever its size) is paid once per batch, not once per key.
A key the store refuses (``StorageError``) is handed back to be tried
again, alone: the keys written are counted once and leave the batch, and the
refused key's malformed payloads are already taken out, so they are counted
once too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import NamedTuple

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
        """Append the batch's keys in one store call; return the keys the store refused (to be tried again), or None."""
        started = time.perf_counter()
        plans: dict[str, _Plan] = {}
        refused: dict[str, StorageError] = {}
        for key in list(batch.keys):
            bodies = batch.keys[key]
            times, values, good = decode(key, bodies, self._bad)
            batch.size -= len(bodies) - len(good)  # the malformed are counted: not again
            batch.keys[key] = good
            try:
                plan = self._plan(key, times, values)
            except StorageError as exc:  # the key's last stored tick could not be read
                refused[key] = exc
                continue
            except Exception as exc:  # a bug, not the store: these ticks would fail again, so they go, said loudly
                log.exception("%s: cannot make its ticks a frame", key)
                self._discard(batch, key, exc)
                continue
            if plan.frame is None:
                self._done(key, plan)
                self._forget(batch, key)
            else:
                plans[key] = plan
        if plans:
            results = self._append(plans)
            for key, plan in plans.items():
                result = results.get(key)
                if isinstance(result, StorageError):
                    refused[key] = result
                    continue
                if isinstance(result, int):
                    self._done(key, plan)
                    self._forget(batch, key)
                else:  # a bug, not the store (a frame refused as invalid): it would fail again
                    self._discard(batch, key, result)
        if refused:
            self.last_error = str(next(iter(refused.values())))
            log.error("%d ticks of %d keys not stored yet, tried again in %g s: %s", batch.size, len(refused),
                      self.retry_seconds, "; ".join(str(exc) for exc in refused.values()))
            return batch
        self.batches += 1
        self.last_error = None
        self.last_write_seconds = time.perf_counter() - started
        return None

    def _append(self, plans: dict[str, _Plan]) -> Mapping[str, int | Exception]:
        """Append every planned key's frame in one store call; return each key's rows or refusal."""
        frames = {key: plan.frame for key, plan in plans.items() if plan.frame is not None}
        metas = {key: _tick_meta(key) for key in frames if key not in self._described}  # once per run
        try:
            return self.store.append_ticks_many(frames, metas=metas)
        except StorageError as exc:  # nothing was written: every key is tried again
            return dict.fromkeys(frames, exc)
        except Exception as exc:  # a bug, not the store: handed to _discard per key
            log.exception("the store's batch append failed")
            return dict.fromkeys(frames, exc)

    def _discard(self, batch: Batch, key: str, error: object) -> None:
        """Drop ``key``'s ticks that cannot be stored (not the store's refusal: they would fail again), loudly."""
        log.error("%s: %d ticks cannot be stored and are discarded: %s", key, len(batch.keys[key]), error)
        self.counts.add_discarded(len(batch.keys[key]))
        self._forget(batch, key)

    @staticmethod
    def _forget(batch: Batch, key: str) -> None:
        """Take ``key``'s payloads out of ``batch``: stored, or discarded and counted."""
        batch.size -= len(batch.keys.pop(key))

    def _bad(self, reason: str, body: bytes) -> None:
        """Count and log (at a bounded rate) one payload that is not a tick."""
        self.counts.add_malformed(1)
        _throttle.log(logging.WARNING, "bad tick", "skipped a malformed bus message (%d so far): %s; first bytes %s",
                      self.counts.malformed, clip(reason, 200), clip(body[:48]))

    def _plan(self, key: str, stamps: np.ndarray, values: np.ndarray) -> _Plan:
        """Return ``key``'s decoded ticks as the frame to append: in time order, none older than the stored."""
        if not len(stamps):
            return _Plan(None)
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
        frame = pd.DataFrame(values, index=index, columns=list(TICK_COLUMNS)) if len(index) else None
        return _Plan(frame, moved, dropped, last)

    def _done(self, key: str, plan: _Plan) -> None:
        """Count a key's ticks once the store has them: written, reordered, and the older ones discarded."""
        if plan.frame is not None:
            self._described.add(key)
            self._last[key] = int(plan.frame.index.asi8[-1])
            self.counts.add_written(len(plan.frame))
        # Counted only now: a refused write is planned again, with the same ticks, when it is tried again.
        self.reordered += plan.moved
        if plan.dropped:
            self.counts.add_discarded(plan.dropped)
            _throttle.log(logging.WARNING, f"older {key}", "%s: discarded %d ticks older than the last stored (%s)",
                          key, plan.dropped, pd.Timestamp(plan.last, tz="UTC").isoformat())

    def _stored_last(self, key: str, first: pd.Timestamp) -> int | None:
        """Return the time (ns) of ``key``'s last stored tick at or after ``first``, None if there is none."""
        try:
            stored = self.store.read_ticks(key, start=first)
        except NotFound:
            return None
        return int(stored.index.asi8[-1]) if len(stored) else None


class _Plan(NamedTuple):
    """One key's share of a batch, ready to append: the frame (None: nothing to write) and what to count then."""

    frame: pd.DataFrame | None
    moved: int = 0  # ticks that came out of time order (sorted)
    dropped: int = 0  # ticks older than the last stored (left out)
    last: int | None = None  # the last stored tick's time (ns) they were older than


def _tick_meta(key: str) -> SymbolMeta:
    """Return what the store keeps beside ``key``'s recorded ticks: the recorder, the exchange's time zone."""
    try:
        timezone = calendar_for_key(key).timezone
    except (ValidationError, ValueError):  # no calendar for it, or not a contract key
        timezone = ""
    return SymbolMeta(key=key, source="recorder", timezone=timezone)
