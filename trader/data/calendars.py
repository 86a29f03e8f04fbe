"""Exchange calendars: the sessions an instrument trades in, with their regular and extended hours.

Holidays and early closes come from ``exchange_calendars`` (no table is written
here); what this module adds is which calendar an instrument follows and the
hours of each session:

- **stocks** (NASDAQ, NYSE, ARCA, SMART, ISLAND...): the ``XNYS`` sessions. RTH is
  the calendar's open to close (09:30-16:00 ET, 13:00 on an early close); the
  extended hours run from 04:00 ET to four hours after the close (20:00 ET, 17:00
  on an early close), as IB's pre- and after-market do.
- **indices** and **options**: the ``XNYS`` sessions, RTH only (they have no extended hours).
- **futures** (CME, CBOT, NYMEX, COMEX, GLOBEX...): ``CMES``, the CME Globex day:
  17:00 CT the evening before to 16:00 CT (earlier on a holiday's early close), so
  the daily halt is 16:00-17:00 CT (17:00-18:00 ET) and the weekend runs from
  Friday's close to Sunday 17:00 CT. RTH is IB's ``liquidHours`` of the CME equity
  futures, 08:30-15:00 CT, cut at an early close (exchange_calendars has no pit session).
- **FX** (IDEALPRO, CASH): the ``24/5`` sessions (Monday to Friday), each from
  17:00 ET the day before to 17:00 ET, so the week is Sunday 17:00 to Friday 17:00
  ET; RTH is the whole session.

A calendar is built once per process (``exchange_calendars`` takes 0.1-0.4 s per
calendar) and widened when a range falls outside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from trader.data.frames import utc
from trader.domain.contract_key import is_key, parse_key
from trader.errors import ValidationError

log = logging.getLogger(__name__)

__all__ = [
    "Gap", "Hours", "SessionWindows", "TradingCalendar", "calendar_for", "calendar_for_key",
    "expected_bar_starts", "missing_sessions", "resolve", "trading_minutes",
]

STOCK_EXCHANGES = frozenset({"NASDAQ", "NYSE", "ARCA", "NYSEARCA", "AMEX", "BATS", "IEX", "SMART", "ISLAND",
                             "NYSENAT", "BYX", "EDGX", "PSX", "CBOE", "CBOE2"})
FUTURE_EXCHANGES = frozenset({"CME", "CBOT", "NYMEX", "COMEX", "GLOBEX", "ECBOT", "NYBOT", "CFE"})
FX_EXCHANGES = frozenset({"IDEALPRO", "IDEAL", "FXCONV"})
_DAY = timedelta(days=1)


class Hours(StrEnum):
    """How a calendar's sessions get their hours."""

    STOCK = "stock"
    INDEX = "index"
    FUTURE = "future"
    FX = "fx"


_CODES = {Hours.STOCK: "XNYS", Hours.INDEX: "XNYS", Hours.FUTURE: "CMES", Hours.FX: "24/5"}
_ZONES = {Hours.STOCK: "America/New_York", Hours.INDEX: "America/New_York", Hours.FUTURE: "America/Chicago",
          Hours.FX: "America/New_York"}
_IB_ZONES = {"America/New_York": "US/Eastern", "America/Chicago": "US/Central"}
_BY_SEC_TYPE = {"STK": Hours.STOCK, "ETF": Hours.STOCK, "IND": Hours.INDEX, "OPT": Hours.INDEX,
                "FOP": Hours.FUTURE, "FUT": Hours.FUTURE, "CONTFUT": Hours.FUTURE, "CASH": Hours.FX}


@dataclass(frozen=True, slots=True)
class Gap:
    """A session with no bar (``found == 0``) or fewer than expected: its first and last missing bar starts."""

    session: date
    first: pd.Timestamp
    last: pd.Timestamp
    expected: int
    found: int


@dataclass(frozen=True, slots=True)
class SessionWindows:
    """Sessions as parallel arrays: label (the session's date), open and close (epoch seconds, UTC)."""

    labels: pd.DatetimeIndex
    opens: np.ndarray
    closes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def locate(self, seconds: np.ndarray) -> np.ndarray:
        """Return the index of the session each time (epoch seconds) lies in, -1 outside every session."""
        seconds = np.asarray(seconds, dtype=np.int64)
        at = np.searchsorted(self.opens, seconds, side="right") - 1
        inside = (at >= 0) & (seconds < self.closes[np.maximum(at, 0)])
        return np.where(inside, at, -1)


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    """The sessions of one kind of instrument: an ``exchange_calendars`` calendar and the hours rule."""

    hours: Hours

    @property
    def code(self) -> str:
        """Return the ``exchange_calendars`` name (XNYS, CMES, 24/5)."""
        return _CODES[self.hours]

    @property
    def timezone(self) -> str:
        """Return the exchange's IANA time zone (the one its bar times are written in)."""
        return _ZONES[self.hours]

    @property
    def ib_timezone(self) -> str:
        """Return the time zone as TWS names it in bar dates (``US/Eastern``, ``US/Central``)."""
        return _IB_ZONES.get(self.timezone, self.timezone)

    def sessions(self, start: datetime | pd.Timestamp, end: datetime | pd.Timestamp) -> pd.DatetimeIndex:
        """Return the labels (dates) of the sessions whose extended hours overlap ``[start, end)``."""
        return self.windows(start, end).labels

    def windows(self, start: datetime | pd.Timestamp, end: datetime | pd.Timestamp, *,
                use_rth: bool = False) -> SessionWindows:
        """Return the sessions overlapping ``[start, end)`` with their RTH or extended hours."""
        lo, hi = utc(start), utc(end)
        labels, opens, closes = _hours(self.hours, lo.date() - _DAY, hi.date() + 2 * _DAY, use_rth)
        keep = (closes > lo.value // 10**9) & (opens < hi.value // 10**9)
        return SessionWindows(labels[keep], opens[keep], closes[keep])

    def is_open(self, when: datetime, *, use_rth: bool = False) -> bool:
        """Return whether ``when`` lies inside a session (its RTH with ``use_rth``)."""
        t = utc(when)
        w = self.windows(t, t + pd.Timedelta(seconds=1), use_rth=use_rth)
        return bool(len(w)) and bool(w.locate(np.array([t.value // 10**9]))[0] >= 0)


def calendar_for(exchange: str | None = None, sec_type: Any = None) -> TradingCalendar:
    """Return the calendar of an instrument listed on ``exchange`` (or, failing that, of ``sec_type``).

    The sec type decides for indices, options and FX (they follow their own hours
    wherever they are listed); the exchange for the rest; ValidationError if neither is known.
    """
    kind = _BY_SEC_TYPE.get(str(sec_type or "").upper())
    if kind in (Hours.INDEX, Hours.FX):
        return _calendar(kind)
    name = (exchange or "").upper()
    if name in FX_EXCHANGES:
        return _calendar(Hours.FX)
    if name in FUTURE_EXCHANGES:
        return _calendar(Hours.FUTURE)
    if name in STOCK_EXCHANGES:
        return _calendar(kind if kind in (Hours.STOCK, Hours.INDEX) else Hours.STOCK)
    if kind is not None:
        return _calendar(kind)
    raise ValidationError(f"no trading calendar for exchange {exchange!r} (sec type {sec_type!r})",
                          exchange=exchange, sec_type=str(sec_type or ""))


def calendar_for_key(key: str, exchange: str | None = None) -> TradingCalendar:
    """Return the calendar of the contract ``key`` names (``AAPL.STK``, ``ES.FUT.202612``), on ``exchange`` if given."""
    return calendar_for(exchange, str(parse_key(key).sec_type))


@cache
def _calendar(hours: Hours) -> TradingCalendar:
    return TradingCalendar(hours)


# --- the exchange_calendars calendars, built once and widened on demand --------------------------
_XCALS: dict[str, Any] = {}


def _xcal(code: str, first: date, last: date) -> Any:
    """Return ``code``'s calendar covering ``first .. last`` (as far as the library's data reaches)."""
    import exchange_calendars as xc

    cal = _XCALS.get(code)
    if cal is None:
        cal = _XCALS[code] = xc.get_calendar(code)
    lo, hi = cal.first_session.date(), cal.last_session.date()
    if first < lo or last > hi:
        start, end = min(first, lo), max(last, hi)
        log.info("widening the %s calendar to %s .. %s", code, start, end)
        try:
            cal = _XCALS[code] = xc.get_calendar(code, start=pd.Timestamp(start), end=pd.Timestamp(end))
        except (xc.errors.CalendarError, ValueError) as exc:  # a bound the library has no data for: keep ours
            log.warning("cannot widen the %s calendar to %s .. %s: %s", code, start, end, exc)
    return cal


def _local(labels: pd.DatetimeIndex, offset: pd.Timedelta, zone: str) -> np.ndarray:
    """Return ``label + offset`` read as a wall-clock time in ``zone``, as epoch seconds."""
    return (labels + offset).tz_localize(zone).as_unit("s").asi8


@cache
def _schedule(code: str, first: date, last: date) -> pd.DataFrame:
    cal = _xcal(code, first, last)
    lo, hi = max(first, cal.first_session.date()), min(last, cal.last_session.date())
    if lo > hi:
        return cal.schedule.iloc[:0]
    return cal.schedule.loc[pd.Timestamp(lo):pd.Timestamp(hi)]


def _hours(hours: Hours, first: date, last: date, use_rth: bool) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Return the sessions labelled ``first .. last`` with their hours (epoch seconds)."""
    # Whole months, so that a cached slice serves every request inside it.
    first_m, last_m = first.replace(day=1), (pd.Timestamp(last) + pd.offsets.MonthEnd(0)).date()
    sched = _schedule(_CODES[hours], first_m, last_m)
    sched = sched.loc[pd.Timestamp(first):pd.Timestamp(last)]
    labels = pd.DatetimeIndex(sched.index)
    opens = sched["open"].dt.tz_convert("UTC").array.as_unit("s").asi8 if len(sched) else np.zeros(0, np.int64)
    closes = sched["close"].dt.tz_convert("UTC").array.as_unit("s").asi8 if len(sched) else np.zeros(0, np.int64)
    opens, closes = np.asarray(opens, dtype=np.int64), np.asarray(closes, dtype=np.int64)
    zone = _ZONES[hours]
    if hours is Hours.STOCK and not use_rth:
        opens = _local(labels, pd.Timedelta(hours=4), zone)
        closes = np.minimum(closes + 4 * 3600, _local(labels, pd.Timedelta(hours=20), zone))
    elif hours is Hours.FUTURE and use_rth:
        opens = np.maximum(opens, _local(labels, pd.Timedelta(hours=8, minutes=30), zone))
        closes = np.minimum(closes, _local(labels, pd.Timedelta(hours=15), zone))
    elif hours is Hours.FX:
        opens = _local(labels, pd.Timedelta(hours=-7), zone)
        closes = _local(labels, pd.Timedelta(hours=17), zone)
    return labels, opens, closes


# --- minutes, expected bars, gaps -----------------------------------------------------------------
def resolve(cal: TradingCalendar | str) -> TradingCalendar:
    """Return ``cal``, or the calendar a contract key (``AAPL.STK``) or an exchange (``CME``) names."""
    if isinstance(cal, TradingCalendar):
        return cal
    return calendar_for_key(cal) if is_key(cal) else calendar_for(cal)


def trading_minutes(cal: TradingCalendar | str, start: datetime | pd.Timestamp, end: datetime | pd.Timestamp,
                    use_rth: bool = False) -> pd.DatetimeIndex:
    """Return the starts (UTC) of the minutes in ``[start, end)`` that lie inside a session.

    ``cal`` is a calendar, a contract key or an exchange (as everywhere below).
    """
    cal = resolve(cal)
    lo, hi = utc(start), utc(end)
    w = cal.windows(lo, hi, use_rth=use_rth)
    first, last = -(-lo.value // 60_000_000_000), -(-hi.value // 60_000_000_000)  # whole minutes
    parts = [np.arange(max(o // 60, first), min(-(-c // 60), last), dtype=np.int64)
             for o, c in zip(w.opens.tolist(), w.closes.tolist(), strict=True)]
    minutes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return pd.DatetimeIndex(minutes * 60_000_000_000, tz="UTC", name="time")


def _seconds_of(bar_size: str) -> int:
    from trader.strategy.bars import parse_bar_size

    try:
        return parse_bar_size(bar_size)
    except ValueError as exc:
        raise ValidationError(str(exc), bar_size=bar_size) from None


def expected_bar_starts(cal: TradingCalendar | str, bar_size: str, start: datetime | pd.Timestamp,
                        end: datetime | pd.Timestamp, use_rth: bool = False) -> pd.DatetimeIndex:
    """Return the bar starts a complete series of ``bar_size`` bars has in ``[start, end)``.

    Intraday bars are aligned to UTC multiples of their size and exist where a
    session minute lies inside them; daily bars are one per session, at its date
    (midnight UTC, as the store keeps IB's daily bars). Longer sizes are refused.
    """
    seconds, cal = _seconds_of(bar_size), resolve(cal)
    if seconds == 86400:
        labels = cal.windows(start, end, use_rth=use_rth).labels
        return pd.DatetimeIndex(labels.tz_localize("UTC"), name="time")
    if seconds > 86400:
        raise ValidationError(f"expected bars are known for sizes up to a day, not {bar_size}", bar_size=bar_size)
    minutes = trading_minutes(cal, start, end, use_rth).asi8 // 10**9
    starts = np.unique(minutes - minutes % seconds)
    return pd.DatetimeIndex(starts * 10**9, tz="UTC", name="time")


def missing_sessions(index: pd.DatetimeIndex, cal: TradingCalendar | str, bar_size: str,
                     start: datetime | pd.Timestamp | None = None, end: datetime | pd.Timestamp | None = None, *,
                     use_rth: bool = False, partial: float | None = None) -> list[Gap]:
    """Return the sessions in ``[start, end)`` (default: the index's first to last bar) without bars.

    A session counts as missing when no bar starts inside its hours (for daily bars:
    no bar on its date). With ``partial`` (a fraction, e.g. 0.5), a session holding
    fewer than that share of its expected intraday bars is reported too, with its
    first and last missing bar start. ``use_rth`` picks the hours the bars should cover.
    """
    seconds, cal = _seconds_of(bar_size), resolve(cal)
    times = pd.DatetimeIndex(index)
    times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
    if start is None or end is None:
        if not len(times):
            return []
        start = times[0] if start is None else start
        end = times[-1] + pd.Timedelta(seconds=min(seconds, 86400)) if end is None else end
    lo, hi = utc(start), utc(end)
    w = cal.windows(lo, hi, use_rth=use_rth)
    if seconds >= 86400:
        midnight = times == times.normalize()  # a bar dated by its session (IB's, as stored)
        have = set(times[midnight].tz_localize(None)) | set(_session_labels(w, times[~midnight]))
        return [Gap(label.date(), label.tz_localize("UTC"), label.tz_localize("UTC"), 1, 0)
                for label in w.labels if label not in have and lo <= label.tz_localize("UTC") < hi]
    stamps = np.sort(times.asi8 // 10**9)
    gaps: list[Gap] = []
    for label, o, c in zip(w.labels, w.opens.tolist(), w.closes.tolist(), strict=True):
        o, c = max(o, lo.value // 10**9), min(c, hi.value // 10**9)
        first_bar, last_bar = o - o % seconds, (c - 1) - (c - 1) % seconds
        found = int(np.searchsorted(stamps, last_bar, "right") - np.searchsorted(stamps, first_bar, "left"))
        expected = (last_bar - first_bar) // seconds + 1
        if found == 0:
            gaps.append(Gap(label.date(), _ts(first_bar), _ts(last_bar), expected, 0))
        elif partial is not None and found < partial * expected:
            wanted = np.arange(first_bar, last_bar + 1, seconds)
            absent = wanted[~np.isin(wanted, stamps)]
            gaps.append(Gap(label.date(), _ts(int(absent[0])), _ts(int(absent[-1])), expected, found))
    return gaps


def _session_labels(w: SessionWindows, times: pd.DatetimeIndex) -> list[pd.Timestamp]:
    at = w.locate(times.asi8 // 10**9)
    return [w.labels[i] for i in at[at >= 0].tolist()]


def _ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")
