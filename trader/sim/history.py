"""Historical bars consistent with the live market: a synthetic past joined to the recorded present.

The past is a one-minute random walk that ends exactly where the live market
started (the instrument's start price, the minute the generator started) and
is drawn backwards from there, one numpy stream per ``(seed, conid, day)``, so
the same request gives the same bars and a longer request extends a shorter
one. From the start on, the bars are the live market's recorded minutes. Bars
of every size are aggregates of those minutes, aligned to UTC (weeks start on
Monday, months on the 1st). Prices are mids: BID and ASK are shifted by half
the spread, TRADES carries the generated volume (IB refuses TRADES for FX, and
so does this). The market runs around the clock: no sessions, no holidays.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from trader.domain import SecType
from trader.sim.market import MarketState, MinuteBar
from trader.sim.wire import Field

__all__ = ["BAR_SECONDS", "HistoryError", "HistoryRequest", "build_bars", "parse_duration", "parse_end"]

BAR_SECONDS: dict[str, int] = {
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900,
    "20 mins": 1200, "30 mins": 1800, "1 hour": 3600, "2 hours": 7200, "3 hours": 10800,
    "4 hours": 14400, "8 hours": 28800, "1 day": 86400, "1 week": 7 * 86400, "1 month": 31 * 86400,
}
_DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
_SHOWS = {"TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"}
MAX_MINUTES = 3 * 366 * 1440  # three years of minutes per request
MAX_BARS = 50_000
_CALENDAR_SECONDS_PER_YEAR = 365 * 86400


class HistoryError(Exception):
    """A historical data request TWS would refuse (error 162 with this text)."""


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """What to build: the window, the bar size and the price type."""

    end: datetime
    duration_seconds: int
    bar_size: str
    what_to_show: str
    format_date: int = 1


def parse_duration(text: str) -> int:
    """Return the seconds of an IB duration such as ``"2 D"`` or ``"1 Y"``."""
    match = re.fullmatch(r"\s*(\d+)\s*([SDWMY])\s*", text.upper())
    if not match:
        raise HistoryError(f"Historical Market Data Service error message:invalid duration {text!r}")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_end(text: str, now: datetime) -> datetime:
    """Return an IB endDateTime as an aware UTC datetime; empty means ``now``.

    Accepts ``YYYYMMDD HH:MM:SS [zone]``, ``YYYYMMDD-HH:MM:SS`` (UTC) and ``YYYYMMDD``.
    """
    text = text.strip()
    if not text:
        return now
    try:
        if len(text) == 8:
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
        if "-" in text[:9]:
            return datetime.strptime(text[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        parts = text.split(" ", 2)
        when = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
        zone = parts[2].strip() if len(parts) > 2 else ""
        return when.replace(tzinfo=ZoneInfo(zone) if zone else UTC).astimezone(UTC)
    except (ValueError, IndexError, ZoneInfoNotFoundError):
        raise HistoryError(f"Historical Market Data Service error message:invalid end date/time {text!r}") from None


class _Minutes:
    """Minute bars as parallel numpy arrays (minute, open, high, low, close, volume, count)."""

    __slots__ = ("close", "count", "high", "low", "minute", "open", "volume")

    def __init__(self, minute: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                 close: np.ndarray, volume: np.ndarray, count: np.ndarray) -> None:
        self.minute, self.open, self.high, self.low = minute, open_, high, low
        self.close, self.volume, self.count = close, volume, count

    @classmethod
    def of(cls, bars: list[MinuteBar]) -> _Minutes:
        return cls(
            np.array([b.minute for b in bars], dtype=np.int64),
            np.array([b.open for b in bars]), np.array([b.high for b in bars]),
            np.array([b.low for b in bars]), np.array([b.close for b in bars]),
            np.array([b.volume for b in bars]), np.array([b.count for b in bars], dtype=np.int64),
        )

    def __add__(self, other: _Minutes) -> _Minutes:
        def join(name: str) -> np.ndarray:
            return np.concatenate([getattr(self, name), getattr(other, name)])

        return _Minutes(join("minute"), join("open"), join("high"), join("low"), join("close"),
                        join("volume"), join("count"))


def _synthetic(state: MarketState, seed: int, first: int, anchor: int) -> _Minutes:
    """Return the synthetic minutes ``first .. anchor-1``, ending at the start price."""
    if first >= anchor:
        return _Minutes.of([])
    inst = state.instrument
    sigma = inst.volatility * math.sqrt(60 / _CALENDAR_SECONDS_PER_YEAR)
    days = range(first // 1440, (anchor - 1) // 1440 + 1)
    z_parts, wick_parts, vol_parts = [], [], []
    for day in days:
        rng = np.random.default_rng([seed, inst.conid, day])
        z_parts.append(rng.standard_normal(1440))
        wick_parts.append(np.abs(rng.standard_normal((2, 1440))))
        vol_parts.append(rng.gamma(2.0, 0.5, 1440))
    base = days[0] * 1440
    lo, hi = first - base, anchor - base  # slice of the minutes wanted
    increments = sigma * np.concatenate(z_parts)[lo:hi]
    wick = np.concatenate(wick_parts, axis=1)[:, lo:hi]
    volume = np.round(np.concatenate(vol_parts)[lo:hi] * inst.trade_size * 20)
    # close(anchor-1) is the start price; walk back: close(m) = close(m+1) - inc(m+1).
    start_log = math.log(float(state.close or inst.price))
    after = np.concatenate([np.cumsum(increments[::-1])[::-1][1:], [0.0]])
    closes = np.exp(start_log - after)
    opens = np.concatenate([[closes[0] * math.exp(-increments[0])], closes[:-1]])
    highs = np.maximum(opens, closes) * np.exp(0.5 * sigma * wick[0])
    lows = np.minimum(opens, closes) * np.exp(-0.5 * sigma * wick[1])
    minutes = np.arange(first, anchor, dtype=np.int64)
    return _Minutes(minutes, opens, highs, lows, closes, volume, (volume > 0).astype(np.int64))


def _buckets(minutes: np.ndarray, bar_size: str) -> np.ndarray:
    if bar_size == "1 week":
        return (minutes // 1440 + 3) // 7  # epoch day 0 was a Thursday; weeks start on Monday
    if bar_size == "1 month":
        months = (minutes * 60).astype("datetime64[s]").astype("datetime64[M]")
        return months.astype(np.int64)  # months since 1970-01
    return minutes * 60 // BAR_SECONDS[bar_size]


def _bucket_start(bucket: int, bar_size: str) -> datetime:
    if bar_size == "1 week":
        return datetime.fromtimestamp((bucket * 7 - 3) * 86400, UTC)
    if bar_size == "1 month":
        return datetime(1970 + bucket // 12, bucket % 12 + 1, 1, tzinfo=UTC)
    return datetime.fromtimestamp(bucket * BAR_SECONDS[bar_size], UTC)


def _date_text(start: datetime, bar_size: str, format_date: int) -> str:
    if BAR_SECONDS[bar_size] >= 86400:
        return start.strftime("%Y%m%d")
    if format_date == 2:
        return str(int(start.timestamp()))
    return start.strftime("%Y%m%d %H:%M:%S") + " UTC"


def build_bars(state: MarketState, seed: int, request: HistoryRequest) -> list[tuple[Field, ...]]:
    """Return the bars of ``request`` as historicalData rows (date, o, h, l, c, volume, wap, count)."""
    if request.bar_size not in BAR_SECONDS:
        raise HistoryError(f"Historical Market Data Service error message:invalid bar size {request.bar_size!r}")
    what = request.what_to_show.upper()
    if what not in _SHOWS:
        raise HistoryError(f"Historical Market Data Service error message:unsupported whatToShow {what!r}")
    inst = state.instrument
    if what == "TRADES" and inst.contract.sec_type is SecType.CASH:
        raise HistoryError(
            f"Historical Market Data Service error message:No historical market data for "
            f"{inst.contract.symbol}/CASH@IDEALPRO Last {request.bar_size}")
    end_minute = math.ceil(request.end.timestamp() / 60)
    first = end_minute - request.duration_seconds // 60
    if end_minute - first > MAX_MINUTES or (end_minute - first) * 60 // BAR_SECONDS[request.bar_size] > MAX_BARS:
        raise HistoryError("Historical Market Data Service error message:Time length exceed max.")
    live = state.minutes
    anchor = live[0].minute
    m = _synthetic(state, seed, first, min(anchor, end_minute))
    m = m + _Minutes.of([bar for bar in live if first <= bar.minute < end_minute])
    if len(m.minute) == 0:
        return []
    buckets = _buckets(m.minute, request.bar_size)
    starts = np.flatnonzero(np.concatenate([[True], buckets[1:] != buckets[:-1]]))
    ends = np.concatenate([starts[1:], [len(buckets)]]) - 1
    shift = 0.0
    if what in ("BID", "ASK"):
        half = float(inst.tick_size) * inst.spread_ticks / 2
        shift = -half if what == "BID" else half
    decimals = max(0, -int(inst.tick_size.normalize().as_tuple().exponent))
    opens = np.round(m.open[starts] + shift, decimals)
    highs = np.round(np.maximum.reduceat(m.high, starts) + shift, decimals)
    lows = np.round(np.minimum.reduceat(m.low, starts) + shift, decimals)
    closes = np.round(m.close[ends] + shift, decimals)
    trades = what == "TRADES"
    volumes = np.add.reduceat(m.volume, starts)
    counts = np.add.reduceat(m.count, starts)
    waps = np.round(np.add.reduceat(m.close, starts) / (ends - starts + 1), decimals + 2)
    rows: list[tuple[Field, ...]] = []
    for i, start in enumerate(starts):
        when = _bucket_start(int(buckets[start]), request.bar_size)
        rows.append((
            _date_text(when, request.bar_size, request.format_date),
            float(opens[i]), float(highs[i]), float(lows[i]), float(closes[i]),
            int(volumes[i]) if trades else -1,
            float(waps[i]) if trades else -1,
            int(counts[i]) if trades else -1,
        ))
    return rows
