"""A backtest's bars: read from the market store or a CSV/Parquet file, their gaps named.

:func:`load_bars` returns, per instrument, its bars in the settings' range
(``[start, end)``; a missing bound: from the first / to the last bar), keyed
by contract key as the strategy service keys them:

- from the market store (``storage.arctic_uri``, or a store given), a symbol
  is read as ``trader history read`` reads it (trader.data.requests'
  ``stored_key``: a contract key as it is, ``AAPL`` as ``AAPL.STK``, ``ES`` as
  the one stored ``ES.FUT...`` key); a size not stored is resampled from a
  finer one by the store;
- from ``settings.data`` (a CSV or Parquet file), the file is read by the
  download layer's file source (trader.data.sources.files), so its columns,
  times and checks are the ones ``history import`` applies.

No bar of an instrument in the range is a NotFound naming the instrument and
the range. A session of the instrument's exchange calendar between its first
and last bar with no bar at all is a gap: it is listed in ``skipped`` (the
backtest simply has no bar there, so nothing is decided or filled in it), at
most ``MAX_LISTED`` of them and a count of the rest; so is a range that starts
before the first bar or ends after the last. The benchmark's close is read
the same way, when the settings name one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from trader.backtest.settings import BacktestSettings
from trader.data.calendars import calendar_for_key, missing_sessions
from trader.data.store import MarketStore
from trader.errors import NotFound, SourceError, ValidationError
from trader.strategy.bars import parse_bar_size
from trader.strategy.base import Strategy

__all__ = ["MAX_LISTED", "LoadedBars", "load_bars", "load_for"]

log = logging.getLogger(__name__)

MAX_LISTED = 50  # gaps listed one by one; the rest are counted
_EDGE = pd.Timedelta(days=1)
_DAY = 86_400
_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass
class LoadedBars:
    """What :func:`load_bars` read: bars per contract key, the gaps skipped, the benchmark's close."""

    bars: dict[str, pd.DataFrame]
    skipped: list[str] = field(default_factory=list)
    benchmark: pd.Series | None = None
    source: str = "store"  # "store" or the file's path


def load_for(strategy: Strategy, settings: BacktestSettings, *, store: MarketStore | None = None) -> LoadedBars:
    """Return the bars a backtest of ``strategy`` under ``settings`` runs on (its instruments and bar size by default)."""
    instruments = settings.instruments or list(strategy.instruments)
    return load_bars(instruments, settings.bar_size or strategy.bar_size, settings, store=store)


def load_bars(instruments: list[str], bar_size: str, settings: BacktestSettings, *,
              store: MarketStore | None = None) -> LoadedBars:
    """Return the bars of ``instruments`` (``bar_size``) in ``settings``' range, from the file or the store."""
    if not instruments:
        raise ValidationError("a backtest needs at least one instrument")
    parse_bar_size(bar_size)
    if settings.data is not None:
        read: _StoreReader | _FileReader = _FileReader(settings.data, bar_size, settings)
        source = str(settings.data)
    else:
        read = _StoreReader(store, bar_size, settings)
        source = "store"
    loaded = LoadedBars({}, source=source)
    for instrument in instruments:
        key, frame = read(instrument)
        loaded.bars[key] = frame
        loaded.skipped.extend(_gaps(key, frame, bar_size, settings))
    if settings.benchmark:
        key, frame = read(settings.benchmark)
        loaded.benchmark = frame["close"].rename(key)
    return loaded


def _range(settings: BacktestSettings) -> str:
    start = settings.start.isoformat() if settings.start else "the first bar"
    end = settings.end.isoformat() if settings.end else "the last bar"
    return f"{start} .. {end}"


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["open", "high", "low", "close", "volume"]]


class _StoreReader:
    def __init__(self, store: MarketStore | None, bar_size: str, settings: BacktestSettings) -> None:
        if store is None:
            from trader.data.factory import open_store

            store = open_store()
        self.store = store
        self.bar_size = bar_size
        self.settings = settings

    def __call__(self, instrument: str) -> tuple[str, pd.DataFrame]:
        from trader.data.requests import stored_key

        key = stored_key(self.store, instrument)
        try:
            frame = self.store.read_bars(key, self.bar_size, self.settings.start, self.settings.end)
        except NotFound:
            raise NotFound(f"no {self.bar_size} bars of {instrument} ({key}) stored", instrument=instrument,
                           key=key) from None
        if frame.empty:
            raise NotFound(f"no {self.bar_size} bars of {instrument} ({key}) stored in {_range(self.settings)}",
                           instrument=instrument, key=key)
        return key, _columns(frame)


class _FileReader:
    def __init__(self, path: Path, bar_size: str, settings: BacktestSettings) -> None:
        from trader.data.sources.files import FileSource

        self.source = FileSource(None, path=path)  # type: ignore[arg-type]  # the settings are not used
        self.path = path
        self.bar_size = bar_size
        self.settings = settings

    def __call__(self, instrument: str) -> tuple[str, pd.DataFrame]:
        from trader.data.requests import job_key

        anchor = self.settings.start or self.settings.end  # a future's symbol names the contract of that day
        if anchor is None and _dated(instrument):  # not today's: a run must not depend on the day it runs
            raise ValidationError(f"{instrument!r} names another contract on each day: give its contract key, "
                                  f"or a start, to read it from {self.path}", instrument=instrument, file=str(self.path))
        try:
            key = job_key(instrument, (anchor or _FIRST).date())
        except ValidationError:
            key = instrument
        start = self.settings.start or _FIRST
        end = self.settings.end or _LAST
        try:
            frames = asyncio.run(self._read(key, start, end))
        except SourceError as exc:
            raise ValidationError(str(exc), instrument=instrument, file=str(self.path)) from None
        frames = [f for f in frames if len(f)]
        if not frames:
            raise NotFound(f"no {self.bar_size} bars of {instrument} in {self.path} in {_range(self.settings)}",
                           instrument=instrument, file=str(self.path))
        frame = _columns(pd.concat(frames) if len(frames) > 1 else frames[0])
        _check_spacing(frame, self.bar_size, instrument, self.path)
        return key, frame

    async def _read(self, key: str, start: datetime, end: datetime) -> list[pd.DataFrame]:
        return [window.frame async for window in self.source.windows(key, self.bar_size, pd.Timestamp(start),
                                                                        pd.Timestamp(end))]


def _check_spacing(frame: pd.DataFrame, bar_size: str, instrument: str, path: Path) -> None:
    """Refuse a file whose bars are not of ``bar_size`` (the usual step between bars), naming both sizes."""
    if len(frame) < 3:
        return
    seconds = parse_bar_size(bar_size)
    step = float(np.median(np.diff(frame.index.asi8))) / 1e9
    same = step >= _DAY if seconds >= _DAY else abs(step - seconds) < 1e-6
    if not same:
        found = f"{step:g} s" if step < _DAY else f"{step / _DAY:g} d"
        raise ValidationError(f"{instrument} in {path}: its bars are {found} apart, the run's bar size is "
                              f"{bar_size} (the strategy's, unless --set bar_size=... says otherwise)",
                              instrument=instrument, file=str(path), bar_size=bar_size)


def _gaps(key: str, frame: pd.DataFrame, bar_size: str, settings: BacktestSettings) -> list[str]:
    seconds = parse_bar_size(bar_size)
    start, end = frame.index[0], frame.index[-1] + pd.Timedelta(seconds=min(seconds, _DAY))
    listed = []
    # the range asked for reaching a day or more past the bars (a date's night before its first bar is not)
    if settings.start is not None and start - settings.start >= _EDGE:
        listed.append(f"{key}: no bars from {settings.start.isoformat()} to the first, {start.isoformat()}")
    if settings.end is not None and settings.end - end >= _EDGE:
        listed.append(f"{key}: no bars from the last, {frame.index[-1].isoformat()}, to {settings.end.isoformat()}")
    if seconds > _DAY:
        return listed
    try:
        calendar = calendar_for_key(key)
    except ValidationError:
        log.info("%s: no trading calendar: gaps not checked", key)
        return listed
    gaps = missing_sessions(frame.index, calendar, bar_size, start, end)
    listed += [f"{key}: no bars in the session of {g.session.isoformat()} ({g.first.isoformat()} .. "
               f"{g.last.isoformat()}): nothing decided or filled in it" for g in gaps[:MAX_LISTED]]
    if len(gaps) > MAX_LISTED:
        listed.append(f"{key}: {len(gaps) - MAX_LISTED} more sessions without bars")
    return listed


def _dated(instrument: str) -> bool:
    """Return whether ``instrument`` reads as a contract that depends on the day (a future's bare symbol)."""
    from trader.data.requests import job_key

    try:
        return job_key(instrument, _FIRST.date()) != job_key(instrument, _LAST.date())
    except ValidationError:
        return False
