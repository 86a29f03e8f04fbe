"""The shape of stored market data: bar and tick frames, and the one check every write goes through.

A bar frame has a UTC DatetimeIndex named ``time`` (bar starts), strictly
increasing, the float columns ``open high low close volume wap`` and the
int column ``bar_count``, always all seven: ``wap`` is NaN and ``bar_count``
-1 (IB's "none") where the source did not give them. A bar library has a
fixed schema, so a window with other columns than the stored ones (an IB
update over a Polygon backfill) could not be written. A bar is
refused when a price is missing or not positive, ``high`` is below ``low``
or does not hold ``open``/``close``, or the volume is negative. Every check
names the instrument and the first offending bar, so a download job can say
what was wrong and go on with the other instruments.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from trader.errors import ValidationError

__all__ = [
    "BAR_COLUMNS", "NO_COUNT", "OPTIONAL_BAR_COLUMNS", "TICK_COLUMNS", "check_bars", "check_ticks", "daily_starts",
    "resample_bars", "utc",
]

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
OPTIONAL_BAR_COLUMNS = ("wap", "bar_count")
#: ``bar_count`` of a bar whose source did not count its trades (as IB sends it).
NO_COUNT = -1
#: Recorded ticks: prices and sizes, NaN where the tick did not carry them.
TICK_COLUMNS = ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume")


def utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """Return ``moment`` as a UTC Timestamp (naive: taken as UTC)."""
    ts = pd.Timestamp(moment)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def daily_starts(times: pd.DatetimeIndex, tz: str = "UTC") -> pd.DatetimeIndex:
    """Return daily bars' starts as the store keeps them (as IB's): midnight UTC of each time's date in ``tz``."""
    return times.tz_convert(tz).tz_localize(None).normalize().tz_localize("UTC")


def _index(frame: pd.DataFrame, key: str, what: str) -> pd.DatetimeIndex:
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError(f"{key}: {what} need a DatetimeIndex of times, not {type(index).__name__}", key=key)
    if index.tz is None:
        index = index.tz_localize("UTC")
    elif str(index.tz) != "UTC":
        index = index.tz_convert("UTC")
    if index.hasnans:
        raise ValidationError(f"{key}: {what} have a missing time", key=key)
    steps = np.diff(index.asi8)  # one pass: strictly increasing, or where it is not
    if len(steps) and not (steps > 0).all():
        at = int(np.argmax(steps <= 0)) + 1
        when = index[at].isoformat()
        if steps[at - 1] == 0:
            raise ValidationError(f"{key}: duplicated {what[:-1]} at {when}", key=key, time=when)
        raise ValidationError(f"{key}: {what} are not in time order (at {when})", key=key, time=when)
    return index if index.name == "time" else index.rename("time")


def check_bars(frame: pd.DataFrame, key: str, start: datetime | None = None,
               end: datetime | None = None) -> pd.DataFrame:
    """Return ``frame`` as a stored bar frame (UTC index ``time``, float64 columns), or raise ``ValidationError``.

    ``start``/``end`` bound the window ``[start, end)`` the bars must lie in.
    A frame already in that shape is returned as it is (not a copy), so the
    check costs one numpy pass over the prices and nothing else.
    """
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(f"{key}: bars lack the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                              key=key, missing=missing)
    index = _index(frame, key, "bars")
    columns = [*BAR_COLUMNS, *OPTIONAL_BAR_COLUMNS]
    values: dict[str, np.ndarray] = {}
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    try:
        for c in columns[:-1]:
            values[c] = (frame[c].to_numpy(dtype="float64") if c in dtypes
                         else np.full(len(frame), np.nan))  # only wap may be absent here
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{key}: bars hold a value that is not a number ({exc})", key=key) from None
    if "bar_count" not in dtypes:
        values["bar_count"] = np.full(len(frame), NO_COUNT, dtype="int64")
    elif dtypes["bar_count"] != "int64":
        counts = pd.to_numeric(frame["bar_count"], errors="coerce").to_numpy(dtype="float64")
        values["bar_count"] = np.where(counts >= 0, np.nan_to_num(counts, nan=0), NO_COUNT).astype("int64")
    else:
        values["bar_count"] = np.maximum(frame["bar_count"].to_numpy(), NO_COUNT)
    if len(index):
        _check_values(values, index, key, start, end)
    if list(dtypes) == columns and all(dtypes[c] == values[c].dtype for c in columns):
        if index is frame.index:
            return frame  # already in shape: the frame itself, nothing copied
        out = frame.copy(deep=False)  # only a new index
        out.index = index
        return out
    return pd.DataFrame(values, index=index)


def _check_values(values: dict[str, np.ndarray], index: pd.DatetimeIndex, key: str,
                  start: datetime | None, end: datetime | None) -> None:
    """Refuse the first bar with a bad price or volume, or outside ``[start, end)``."""
    o, h, lo, c = values["open"], values["high"], values["low"], values["close"]
    with np.errstate(invalid="ignore"):
        body_low, body_high = np.minimum(o, c), np.maximum(o, c)
        # One pass for good bars (a NaN fails every comparison): low > 0 and below the body, high
        # finite and above it (so every price is positive and finite, and high >= low).
        good = (lo > 0) & (lo <= body_low) & (h >= body_high) & (h < np.inf) & (values["volume"] >= 0)
    if not good.all():
        _first_bad(values, index, key)
    if start is not None and index[0] < utc(start):
        raise ValidationError(f"{key}: bar at {index[0].isoformat()} is before the window's start "
                              f"{utc(start).isoformat()}", key=key)
    if end is not None and index[-1] >= utc(end):
        raise ValidationError(f"{key}: bar at {index[-1].isoformat()} is not before the window's end "
                              f"{utc(end).isoformat()}", key=key)


def _first_bad(values: dict[str, np.ndarray], index: pd.DatetimeIndex, key: str) -> None:
    """Raise for the first bar of the first kind that is wrong (the slow path: only for a bad frame)."""
    o, h, lo, c = values["open"], values["high"], values["low"], values["close"]
    with np.errstate(invalid="ignore"):
        least, most = np.minimum(np.minimum(o, c), lo), np.maximum(np.maximum(o, c), h)
        _refuse(index, ~(least > 0) | ~(most < np.inf), key, "has a missing or non-positive price")
        _refuse(index, h < lo, key, "has high < low")
        _refuse(index, (h < np.maximum(o, c)) | (lo > np.minimum(o, c)), key, "has open or close outside high..low")
        _refuse(index, ~(values["volume"] >= 0), key, "has a negative or missing volume")


def _refuse(index: pd.DatetimeIndex, bad: np.ndarray, key: str, what: str) -> None:
    if bad.any():
        at = index[int(np.argmax(bad))].isoformat()
        raise ValidationError(f"{key}: the bar at {at} {what}", key=key, time=at)


def check_ticks(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Return ``frame`` as a stored tick frame (UTC index ``time``, the :data:`TICK_COLUMNS`), or raise.

    Ticks may share a time (several prints in one microsecond) but must be in order.
    """
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError(f"{key}: ticks need a DatetimeIndex of times", key=key)
    index = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).rename("time")
    if len(index) and not index.is_monotonic_increasing:
        raise ValidationError(f"{key}: ticks are not in time order", key=key)
    return pd.DataFrame({c: (frame[c].to_numpy(dtype="float64") if c in frame.columns
                             else np.full(len(frame), np.nan)) for c in TICK_COLUMNS}, index=index)


def resample_bars(bars: pd.DataFrame, seconds: int, timezone: str = "UTC") -> pd.DataFrame:
    """Aggregate stored bars into ``seconds``-long bars: open first, high max, low min, close last.

    ``volume`` and ``bar_count`` are summed (a count is -1 if one of its bars'
    is); ``wap`` is the volume-weighted mean of the waps known (their plain
    mean where no volume traded; NaN if no bar has one). Bars shorter
    than a day are aligned to UTC; a day (or more) is the exchange's date in
    ``timezone``, labelled at that date's midnight UTC, as daily bars are stored.
    Periods without a bar are left out.
    """
    if bars.empty:
        return bars
    index = bars.index
    if seconds >= 86_400:
        local = index.tz_convert(timezone).tz_localize(None).normalize()
        keys = local.tz_localize("UTC")
        if seconds > 86_400:  # whole multiples of a day, from the epoch
            step = seconds * 1_000_000_000
            keys = pd.DatetimeIndex((keys.asi8 // step) * step, tz="UTC")
    else:
        step = seconds * 1_000_000_000
        keys = pd.DatetimeIndex((index.asi8 // step) * step, tz="UTC")
    grouped = bars.groupby(keys, sort=True)
    out = pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                        "low": grouped["low"].min(), "close": grouped["close"].last(),
                        "volume": grouped["volume"].sum()})
    if "wap" in bars.columns:
        known = bars["wap"].notna()
        weighted = (bars["wap"] * bars["volume"]).groupby(keys, sort=True).sum()
        volume = bars["volume"].where(known, 0.0).groupby(keys, sort=True).sum()
        plain = grouped["wap"].mean()
        out["wap"] = (weighted / volume.where(volume > 0)).fillna(plain)
    if "bar_count" in bars.columns:
        counts = bars["bar_count"]
        unknown = (counts < 0).groupby(keys, sort=True).any()
        out["bar_count"] = counts.groupby(keys, sort=True).sum().where(~unknown, NO_COUNT).astype("int64")
    out.index = out.index.rename("time")
    return out
