"""Replay from the market store: stored bars of one size, or recorded ticks, of several keys in time order.

:class:`StoreReplayData` is a :class:`~trader.sim.replay_data.ReplayData`: it
reads ``[start, end)`` one day at a time (so a year of minutes never sits in
memory whole), each key's rows of that day merged into one frame in time order
with a ``symbol`` column holding the contract key, which the catalogue
resolves (``AAPL.STK``). Bars play as every replayed bar does (four prints).

Recorded ticks are the bus's tick messages: each row is the whole ticker as
IB last showed it (bid, ask, last, sizes and the day's volume), so a quote
change repeats the last trade's price and size. To replay the feed as it was,
a row counts as a trade only where the day's volume grew (or started again on
a new day; with no volume, where the last price or size changed); on the
other rows the last size is dropped, so they move the quote and trade nothing.

:func:`open_replay_data` picks the source a :class:`ReplayConfig` names: its
file, or the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from trader.data.frames import utc
from trader.data.store import MarketStore
from trader.errors import ConfigError, NotFound
from trader.sim.config import ReplayConfig
from trader.sim.replay_data import FileReplayData, ReplayData
from trader.strategy.bars import parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["StoreReplayData", "mark_trades", "open_replay_data"]

CHUNK = timedelta(days=1)
_PREVIOUS = tuple[float, float, float]  # a key's last row seen: volume, last, last_size


class StoreReplayData:
    """The stored bars (or recorded ticks) of ``keys`` in ``[start, end)``, read a day at a time.

    Every key must be in the store (bars of ``bar_size``, or a finer size it is
    resampled from; or recorded ticks): a missing one is a ConfigError now,
    naming it, not an empty replay later. ``end`` None reads up to now.
    """

    def __init__(self, store: MarketStore, keys: Sequence[str], *, start: datetime, end: datetime | None = None,
                 bar_size: str = "1m", ticks: bool = False, chunk: timedelta = CHUNK) -> None:
        if not keys:
            raise ConfigError("a replay from the store needs at least one contract key")
        self.store = store
        self.keys = list(dict.fromkeys(keys))
        self.start = utc(start)
        self.end = utc(end if end is not None else datetime.now(UTC))
        if self.end <= self.start:
            raise ConfigError(f"replay from the store: end {self.end.isoformat()} is not after "
                              f"start {self.start.isoformat()}")
        self.ticks = ticks
        self.bar_size = short_bar_size(parse_bar_size(bar_size))
        self.chunk = chunk
        what = "ticks" if ticks else self.bar_size
        self.name = f"store:{','.join(self.keys)} ({what})"
        self._check_keys()

    def _check_keys(self) -> None:
        if self.ticks:
            held = set(self.store.tick_symbols())
            missing = [k for k in self.keys if k not in held]
            if missing:
                raise ConfigError(f"replay from the store: no ticks recorded for {', '.join(missing)} "
                                  f"(recorded: {', '.join(sorted(held)) or 'none'})")
            return
        missing = []
        for key in self.keys:
            try:
                self.store.read_bars(key, self.bar_size, self.start, self.start + pd.Timedelta(1, "ns"))
            except NotFound:
                missing.append(key)
        if missing:
            raise ConfigError(f"replay from the store: no {self.bar_size} bars stored for {', '.join(missing)} "
                              f"(nor a finer size to resample them from)")

    def frames(self) -> Iterator[pd.DataFrame]:
        """Yield each day's rows of every key, merged in time order, with a ``symbol`` column."""
        previous: dict[str, _PREVIOUS] = {}
        lo = self.start
        while lo < self.end:
            hi = min(lo + self.chunk, self.end)
            parts = []
            for key in self.keys:
                frame = self._read(key, lo, hi)
                if len(frame):
                    if self.ticks:
                        frame = mark_trades(frame, previous, key)
                    parts.append(frame.assign(symbol=key))
            if parts:
                merged = pd.concat(parts) if len(parts) > 1 else parts[0]
                merged = merged.sort_index(kind="stable")
                yield merged.rename_axis("time").reset_index()
            lo = hi

    def _read(self, key: str, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        if self.ticks:
            return self.store.read_ticks(key, lo, hi)
        return self.store.read_bars(key, self.bar_size, lo, hi)


def mark_trades(frame: pd.DataFrame, previous: dict[str, _PREVIOUS], key: str) -> pd.DataFrame:
    """Return ``frame`` (one key's recorded ticks) with the last size kept only on the rows that traded."""
    volume = frame["volume"].to_numpy(dtype=np.float64)
    last = frame["last"].to_numpy(dtype=np.float64)
    size = frame["last_size"].to_numpy(dtype=np.float64)
    before = previous.get(key, (np.nan, np.nan, np.nan))
    prev_volume = pd.Series(np.concatenate([[before[0]], volume])).ffill().to_numpy()[:-1]
    prev_last = np.concatenate([[before[1]], last[:-1]])
    prev_size = np.concatenate([[before[2]], size[:-1]])
    with np.errstate(invalid="ignore"):
        # the volume grew, or fell back to a new day's first trades (IB counts it per day)
        grew = np.isfinite(volume) & np.isfinite(prev_volume) & ((volume > prev_volume)
                                                                | ((volume < prev_volume) & (volume > 0)))
        changed = ~np.isfinite(volume) & np.isfinite(last) & (
            (last != prev_last) | (size != prev_size) | ~np.isfinite(prev_last))
    trade = grew | changed
    if key not in previous:
        trade[0] = False  # the first row is the ticker as found when recording began: a state, not a trade
    known = volume[np.isfinite(volume)]
    previous[key] = (float(known[-1]) if len(known) else before[0], float(last[-1]), float(size[-1]))
    out = frame.copy()
    out["last_size"] = np.where(trade, size, np.nan)
    return out


def open_replay_data(config: ReplayConfig) -> ReplayData:
    """Return the replay source ``config`` names: its file, or the market store's keys."""
    if config.file is not None:
        return FileReplayData(config.file)
    from trader.data.factory import open_store

    if config.start is None:
        raise ConfigError("a replay from the store needs a start (--start)")
    store = open_store(uri=config.store_uri) if config.store_uri else open_store()
    log.info("replaying %s from %r", ", ".join(config.store), store)
    return StoreReplayData(store, config.store, start=config.start, end=config.end, bar_size=config.bar_size,
                           ticks=config.ticks)
