"""CSV and Parquet files of bars as a download source: an import checked whole before anything is yielded.

A file (``.csv``, ``.csv.gz``, ``.txt``; ``.parquet``, ``.pq``) has a time
column (``time``, ``timestamp``, ``datetime`` or ``date``; or a Parquet
DatetimeIndex), the columns ``open high low close volume`` and optionally
``wap`` (or ``vwap``, ``average``) and ``bar_count`` (or ``count``,
``trades``); column names are read case-blind. Times are ISO text, datetimes
or epoch numbers (s, ms, us or ns, told by their size); naive ones are in the
``tz`` option's zone (UTC by default). A daily bar is stamped at midnight UTC
of its date, as IB's are, whatever the time of day written.

Which instrument a row is: a ``symbol`` (or ``key``) column of contract keys
(a plain ``AAPL`` means ``AAPL.STK``); else the ``symbol`` option names the
file's one instrument; else the file is taken as the bars of the first
instrument asked for, and any other is refused (so a one-instrument file is
never imported as every member of a universe).

An instrument's rows are checked whole by :func:`trader.data.frames.check_bars`
(the store's own check) before the first window is yielded, so a missing
column, unsorted or duplicated rows, a bar with high < low, or rows closer
together than the bar size is a SourceError naming the file and the
instrument, and nothing is written. The windows are calendar months of the
requested range clipped to the instrument's rows in the file (a month with no
rows inside that span is an empty window, which keeps what is stored there,
as every empty window does); a file never touches stored bars outside its
own span. So, unlike the other
sources, its windows may end before the end asked for:
:attr:`FileSource.covers_range` is False to tell a caller so. A file with no
row of the instrument in the range asked (a header-only file, rows of other
years) answers one empty window over that range, as the other sources
answer an empty range: nothing is written, the stored bars stay, the job
counts it in ``empty`` and the instrument's ``done_until`` moves to its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from trader.config import Settings
from trader.data.frames import BAR_COLUMNS, check_bars, daily_starts, utc
from trader.data.sources.base import Window
from trader.data.sources.http import bar_seconds
from trader.errors import SourceError, ValidationError

__all__ = ["FileSource", "month_spans"]

log = logging.getLogger(__name__)

TIME_COLUMNS = ("time", "timestamp", "datetime", "date")
SYMBOL_COLUMNS = ("symbol", "key")
_ALIASES = {"vwap": "wap", "average": "wap", "count": "bar_count", "barcount": "bar_count", "trades": "bar_count"}
_CSV = (".csv", ".csv.gz", ".txt")
_PARQUET = (".parquet", ".pq")
_DAY = 86_400


class _Refused(Exception):
    """What is wrong with the file as a whole (reported for each instrument asked for)."""


def month_spans(start: pd.Timestamp, end: pd.Timestamp) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    """Yield ``[a, b)`` spans covering ``[start, end)``, cut at each calendar month's start (UTC)."""
    at = start
    while at < end:
        stop = min((at + pd.offsets.MonthBegin(1)).normalize(), end)
        yield at, stop
        at = stop


def _parse(text: pd.Series, *, utc: bool) -> pd.Series:
    try:
        return pd.to_datetime(text, format="ISO8601", utc=utc)
    except ValueError:  # another layout: each value parsed on its own (slower, but read)
        return pd.to_datetime(text, format="mixed", utc=utc)


class FileSource:
    """Bars imported from one CSV or Parquet file (see the module's docstring).

    Options: ``path`` (the file), ``symbol`` (the instrument of a file without a
    symbol column), ``tz`` (the zone of naive times, default UTC).
    """

    name = "file"
    #: The windows cover only the part of the range the file has rows for (not the whole of it).
    covers_range = False

    def __init__(self, settings: Settings, *, path: str | Path, symbol: str | None = None, tz: str = "UTC") -> None:
        self.path = Path(path).expanduser()
        self.symbol = symbol.strip().upper() if symbol else None
        self.tz = tz
        self._table: pd.DataFrame | None = None
        self._groups: dict[str, np.ndarray] | None = None  # contract key -> its rows' positions (a symbol column)
        self._error: str | None = None
        self._bound: str | None = None  # the instrument a file without symbols was read as

    def _fail(self, key: str, reason: str) -> SourceError:
        return SourceError.of(key, f"file {self.path}: {reason}", retryable=False, source=self.name,
                              file=str(self.path))

    async def windows(self, key: str, bar_size: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> AsyncIterator[Window]:
        """Yield the file's bars of ``key`` in ``[start, end)`` by calendar month, checked whole first."""
        seconds = bar_seconds(key, self.name, bar_size)
        if self._table is None and self._error is None:
            try:
                self._table, self._groups = await asyncio.to_thread(self._load)
            except _Refused as exc:
                self._error = str(exc)
        if self._error is not None or self._table is None:
            raise self._fail(key, self._error or "unreadable")
        bars = self._bars(key, self._table, seconds, bar_size)
        lo = max(utc(start), bars.index[0]) if len(bars) else utc(start)
        hi = min(utc(end), bars.index[-1] + pd.Timedelta(seconds=seconds)) if len(bars) else lo
        if lo >= hi:  # no row in the range: one empty window (stored bars kept), as another source answers
            log.info("file %s: no %s bars of %s in %s .. %s", self.path, bar_size, key, start, end)
            yield Window(utc(start), utc(end), bars.iloc[:0])
            return
        for a, b in month_spans(lo, hi):
            yield Window(a, b, bars[(bars.index >= a) & (bars.index < b)])

    def _load(self) -> tuple[pd.DataFrame, dict[str, np.ndarray] | None]:
        """Read the file; return its rows (lower-case columns, a UTC ``time``) and each key's rows, if it names them."""
        name = self.path.name.lower()
        try:
            if name.endswith(_PARQUET):
                frame = pd.read_parquet(self.path)
            elif name.endswith(_CSV):
                frame = pd.read_csv(self.path)
            else:
                raise _Refused(f"not a CSV ({', '.join(_CSV)}) or Parquet ({', '.join(_PARQUET)}) file")
        except (OSError, ValueError, ImportError) as exc:  # missing, unreadable, not the format its name says
            raise _Refused(f"cannot be read: {exc}") from None
        if isinstance(frame.index, pd.DatetimeIndex) or frame.index.name in TIME_COLUMNS:
            frame = frame.reset_index()
        frame.columns = [_ALIASES.get(c, c) for c in (str(c).strip().lower() for c in frame.columns)]
        time_column = next((c for c in TIME_COLUMNS if c in frame.columns), None)
        if time_column is None:
            raise _Refused(f"no time column ({', '.join(TIME_COLUMNS)}) among {', '.join(frame.columns)}")
        frame["time"] = self._times(frame[time_column], time_column)
        column = next((c for c in SYMBOL_COLUMNS if c in frame.columns), None)
        groups = None
        if column is not None:  # grouped once: a file of a whole universe is asked for each member in turn
            names = frame[column].astype(str).str.strip().str.upper()
            names = names.where(names.str.contains(".", regex=False), names + ".STK")
            groups = {str(k): v for k, v in names.groupby(names, sort=True).indices.items()}
        log.info("file %s: %d rows read%s", self.path, len(frame),
                 f", {len(groups)} instruments" if groups is not None else "")
        return frame, groups

    def _times(self, column: pd.Series, name: str) -> pd.Series:
        try:
            if pd.api.types.is_numeric_dtype(column):  # epoch numbers: the unit told by their size
                biggest = float(np.nanmax(np.abs(column.to_numpy(dtype="float64")))) if len(column) else 0.0
                unit = next(u for u, top in (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", np.inf))
                            if biggest < top)
                return pd.to_datetime(column, unit=unit, utc=True)
            if pd.api.types.is_datetime64_any_dtype(column):
                times = column
            else:  # text: with a UTC offset each (DST may change it within the file), or with none
                text = column.astype(str).str.strip()
                aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
                if aware.any() and not aware.all():
                    raise _Refused(f"column {name!r} mixes times with and without a UTC offset")
                times = _parse(text, utc=bool(aware.any()))
            if times.dt.tz is None:
                return self._localize(times, name)
            return times.dt.tz_convert("UTC")
        except (ValueError, TypeError, OverflowError) as exc:  # dateutil's ParserError is a ValueError
            raise _Refused(f"column {name!r} holds something that is not a time: {exc}") from None

    def _localize(self, times: pd.Series, name: str) -> pd.Series:
        """Return naive ``times`` read in ``tz`` as UTC; refuse one its DST change makes ambiguous or skips.

        pandas raises pytz's errors for those (not ValueErrors): asked for NaT
        instead, so the first one can be named with the remedy.
        """
        local = times.dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
        unknown = local.isna() & times.notna()
        if unknown.any():
            first = times[unknown].iloc[0]
            ambiguous = times[times == first].dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="shift_forward")
            what = ("is ambiguous in {tz} (it comes twice as the clocks go back)" if ambiguous.isna().all()
                    else "does not exist in {tz} (the clocks skip it)")
            raise _Refused(f"column {name!r}: {first} {what.format(tz=self.tz)}; give each time a UTC offset "
                           f"(2026-11-01T01:30:00-04:00) or write the times in UTC (tz=UTC)")
        return local.dt.tz_convert("UTC")

    def _rows(self, key: str, table: pd.DataFrame) -> pd.DataFrame:
        wanted = key.strip().upper()
        if self._groups is not None:
            positions = self._groups.get(wanted)
            if positions is None:
                held = list(self._groups)
                column = next(c for c in SYMBOL_COLUMNS if c in table.columns)
                shown = ", ".join(held[:10]) + (f" and {len(held) - 10} more" if len(held) > 10 else "")
                raise self._fail(key, f"no rows for {wanted} (its {column} column has {shown})")
            return table.iloc[np.sort(positions)]
        bound = self.symbol or self._bound
        if bound is not None and bound != wanted:
            raise self._fail(key, f"holds the bars of {bound} only (no symbol column)")
        if bound is None:
            log.info("file %s: no symbol column: read as the bars of %s", self.path, wanted)
        self._bound = wanted
        return table

    def _bars(self, key: str, table: pd.DataFrame, seconds: int, bar_size: str) -> pd.DataFrame:
        rows = self._rows(key, table)
        missing = [c for c in BAR_COLUMNS if c not in rows.columns]
        if missing:
            raise self._fail(key, f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} "
                                  f"(it has {', '.join(c for c in table.columns if c != 'time')})")
        times = pd.DatetimeIndex(rows["time"])
        if seconds >= _DAY:  # a daily bar: its date where it was written, at midnight UTC
            times = daily_starts(times, self.tz)
        frame = rows.drop(columns="time").set_axis(times.rename("time"))
        try:
            bars = check_bars(frame, key)
        except ValidationError as exc:
            raise self._fail(key, str(exc).removeprefix(f"{key}: ")) from None
        if len(bars) > 1:
            gaps = np.diff(bars.index.asi8)
            if gaps.min() < seconds * 10**9:
                at = bars.index[int(np.argmin(gaps)) + 1]
                raise self._fail(key, f"bars {gaps.min() / 1e9:g} s apart at {at.isoformat()}: "
                                      f"not {bar_size} bars")
        return bars

    async def close(self) -> None:
        """Forget the file's rows."""
        self._table, self._groups, self._error = None, None, None
