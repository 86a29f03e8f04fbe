"""Replay: stored bars or ticks drive some instruments of the simulated market, at a chosen speed.

:class:`ReplaySource` plays the rows of a :class:`~trader.sim.replay_data.ReplayData`
(a CSV or Parquet file today; ArcticDB plugs in through the same protocol) into
the market states of the instruments the data names; the others keep their
random walk. Data time maps onto the server's clock at ``speed`` seconds of
data per second of clock, counted from the first step; a paused market holds
the replay where it is. With ``align`` (seconds) the replay starts on the
next multiple of it on the server's clock, and after a pause resumes at the
same phase of it, so the bars of a replay at ``speed = bar length / align``
each fall into exactly one live bar of ``align`` seconds (epoch-bucketed, as
the strategy service's bars are). ``status()["anchor"]`` pairs a clock time
with the data time it plays, for mapping live bars back to the data's.
Each step plays every row up to the data cursor and
keeps each quote passed through in the state's ``passed`` list, so the
matching engine sees the extremes even when one step plays many rows.

Before the first step each replayed instrument shows its first row's quote and
takes its first price as the previous close, so the synthetic history of
:mod:`trader.sim.history` ends where a file's replay begins (a store replay's
history is the store's, up to :meth:`ReplaySource.played_until`: see
:mod:`trader.sim.store_history`). At the end of the data
the instruments stay where they are, or the replay starts again (``loop``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np

from trader.errors import ConfigError
from trader.sim.catalogue import Catalogue, ReplayConfig
from trader.sim.market_state import MarketState, MinuteBar, minute_of, record_minute
from trader.sim.replay_data import NO_PRICE, Chunk, ReplayData, SymbolResolver, prepare_chunk

log = logging.getLogger(__name__)

__all__ = ["ReplaySource"]

_NANOS = 1_000_000_000


def _nanos(when: datetime) -> int:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return int(aware.timestamp()) * _NANOS + aware.microsecond * 1000


def _datetime(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / _NANOS, UTC)


class ReplaySource:
    """Plays ``data`` into the market states of the instruments it names.

    The whole source is read once on construction, chunk by chunk, to check
    every row (an unknown symbol or a bad bar is a ConfigError now, not an
    hour into the replay) and to find the instruments and their first quotes.
    """

    def __init__(self, data: ReplayData, catalogue: Catalogue, config: ReplayConfig) -> None:
        self.data = data
        self.config = config
        self.speed = config.speed
        self.resolver = SymbolResolver(catalogue, config, data.name)
        self._start = None if config.start is None else _nanos(config.start)
        self._bar_nanos = None if config.bar_seconds is None else config.bar_seconds * _NANOS
        self.rows = 0
        self._first: dict[int, Chunk] = {}
        self._origin = self._scan()
        self.conids = frozenset(self._first)
        self.rows_played = 0
        self.loops = 0
        self.done = False
        self._states: dict[int, MarketState] = {}
        self._chunks: Iterator[Chunk] = iter(())
        self._chunk: Chunk | None = None
        self._pos = 0
        self._cursor = self._origin
        self._align = None if config.align is None else config.align * _NANOS
        self._anchor: tuple[int, int] | None = None  # (clock ns, data ns) the cursor counts from; None: not playing
        self._held_at: int | None = None  # the clock at the last paused step once started
        self._phase = 0  # with align: the clock phase (ns modulo align) the cursor is at

    # -- reading -----------------------------------------------------------------
    def _read(self) -> Iterator[Chunk]:
        """Yield the playable chunks from the start time on."""
        for frame in self.data.frames():
            if frame.empty:
                continue
            chunk, length = prepare_chunk(frame, self.resolver, self._bar_nanos, self.data.name)
            if self._bar_nanos is None and length is not None:
                self._bar_nanos = length  # inferred once, from the first chunk, for the whole source
            if self._start is not None:
                keep = int(np.searchsorted(chunk.time, self._start, side="left"))
                chunk = _slice(chunk, keep, len(chunk))
            if len(chunk):
                yield chunk

    def _scan(self) -> int:
        """Check every row; note each instrument's first row; return the first time."""
        origin: int | None = None
        previous = -(2**63)
        for chunk in self._read():
            if int(chunk.time[0]) < previous:
                raise ConfigError(f"replay file {self.data.name}: rows are not in time order "
                                  f"(row {self.rows + 1} is before the one above it)")
            previous = int(chunk.time[-1])
            origin = int(chunk.time[0]) if origin is None else origin
            conids, firsts = np.unique(chunk.conid, return_index=True)
            for conid, index in zip(conids.tolist(), firsts.tolist(), strict=True):
                if conid not in self._first:
                    self._first[conid] = _slice(chunk, index, index + 1)
            self.rows += len(chunk)
        if origin is None:
            where = "" if self._start is None else f" at or after {_datetime(self._start).isoformat()}"
            raise ConfigError(f"replay file {self.data.name}: no rows{where}")
        # a store replay's start bounds what is read (often a bare date): play from its first row
        return origin if self._start is None or self.config.store else self._start

    # -- playing -----------------------------------------------------------------
    def attach(self, states: dict[int, MarketState], start: datetime) -> None:
        """Take over the replayed instruments' states and show each one's first quote."""
        for conid, first in self._first.items():
            state = states[conid]
            self._play(state, first, 0)
            price = state.last if state.last is not None else state.mid
            state.last, state.last_size, state.volume = None, 0, 0
            state.open = state.high = state.low = None
            state.close, state.time = price, start
            mid = float(state.mid)
            state.minutes = [MinuteBar(minute_of(start), mid, mid, mid, mid)]
            self._states[conid] = state
        self._chunks = self._read()

    def hold(self, now: datetime) -> None:
        """Let clock time pass without playing (the market is paused)."""
        if self._anchor is not None:
            clock, data = self._anchor
            if self._align is not None:
                self._phase = (clock + int((self._cursor - data) / self.speed)) % self._align
            self._anchor, self._held_at = None, _nanos(now)
        elif self._held_at is not None:
            self._held_at = _nanos(now)

    def _start_at(self, now: int) -> int:
        """Return the clock time (ns) the cursor plays on from: now, the pause's last step, or the next aligned time."""
        if self._align is None:
            return now if self._held_at is None else self._held_at
        return now + (self._phase - now) % self._align

    def advance(self, now: datetime) -> list[MarketState]:
        """Play every row up to the data time that corresponds to ``now``; return the states that moved."""
        clock = _nanos(now)
        if not self.done:
            if self._anchor is None:
                self._anchor, self._held_at = (self._start_at(clock), self._cursor), None
            start, data = self._anchor
            if clock < start:
                return []  # waiting for the aligned start
            self._cursor = data + int((clock - start) * self.speed)
        traded: dict[int, list[float]] = {}
        restarted = False
        while not self.done:
            chunk = self._chunk
            if chunk is None or self._pos >= len(chunk):
                self._chunk, self._pos = next(self._chunks, None), 0
                if self._chunk is not None:
                    continue
                if not self.config.loop or restarted:
                    self.done = not self.config.loop
                    if self.done:
                        log.info("replay of %s finished: %d rows played", self.data.name, self.rows_played)
                    break
                self.loops, restarted = self.loops + 1, True
                self._chunks, self._cursor, self._phase = self._read(), self._origin, 0
                self._anchor = (self._start_at(clock), self._origin)
                if clock < self._anchor[0]:
                    break
                continue
            end = int(np.searchsorted(chunk.time, self._cursor, side="right"))
            for k in range(self._pos, end):
                conid = int(chunk.conid[k])
                state = self._states[conid]
                totals = traded.get(conid)
                if totals is None:
                    totals = traded[conid] = [0.0, 0]
                    state.passed.clear()
                volume = self._play(state, chunk, k)
                if volume:
                    totals[0] += volume
                    totals[1] += 1
                state.passed.append(state.quote())
            self.rows_played += end - self._pos
            self._pos = end
            if end < len(chunk):
                break
        moved = []
        for conid, (size, trades) in traded.items():
            state = self._states[conid]
            state.time = now
            record_minute(state, now, size, int(trades))
            moved.append(state)
        return moved

    @staticmethod
    def _play(state: MarketState, chunk: Chunk, k: int) -> int:
        """Apply row ``k`` to ``state``; return the size traded (0 for a quote)."""
        bid, ask, last = int(chunk.bid[k]), int(chunk.ask[k]), int(chunk.last[k])
        if bid != NO_PRICE and ask != NO_PRICE:
            state.bid_ticks, state.spread_ticks = max(1, bid), max(1, ask - bid)
        elif bid != NO_PRICE:
            state.bid_ticks = max(1, bid)
        elif ask != NO_PRICE:
            state.bid_ticks = max(1, ask - state.spread_ticks)
        elif last != NO_PRICE and not state.bid_ticks <= last <= state.bid_ticks + state.spread_ticks:
            # a trade outside the quote: move the quote to bracket it with the instrument's spread
            state.spread_ticks = state.instrument.spread_ticks
            state.bid_ticks = max(1, last - state.spread_ticks // 2)
        for name in ("bid_size", "ask_size"):
            size = float(getattr(chunk, name)[k])
            if math.isfinite(size) and size >= 0:
                setattr(state, name, max(1, round(size)))
        if last == NO_PRICE:
            return 0
        price = last * state.tick
        size = float(chunk.last_size[k])
        if math.isfinite(size) and size > 0:
            state.trade(price, round(size))
            return round(size)
        state.last = price
        return 0

    def played_until(self) -> int:
        """Return the data time (ns since the epoch) played so far: every row up to it, none after it."""
        return self._cursor

    def status(self) -> dict[str, Any]:
        """Return where the replay is, for the server's status."""
        return {
            "source": self.data.name,
            "speed": self.speed,
            "instruments": sorted(self.conids),
            "rows": self.rows,
            "rows_played": self.rows_played,
            "data_time": _datetime(self._cursor),
            "align": None if self._align is None else self._align / _NANOS,
            "anchor": None if self._anchor is None else {"clock": _datetime(self._anchor[0]),
                                                         "data": _datetime(self._anchor[1])},
            "loops": self.loops,
            "done": self.done,
        }


def _slice(chunk: Chunk, start: int, stop: int) -> Chunk:
    return Chunk(*(getattr(chunk, name)[start:stop] for name in Chunk.__slots__))

