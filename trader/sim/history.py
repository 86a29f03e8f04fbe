"""Historical bars consistent with the live market: a synthetic past joined to the recorded present.

The past is a one-minute random walk that ends exactly where the live market
started (the instrument's start price, the minute the generator started) and
is drawn backwards from there, one numpy stream per ``(seed, conid, day)``, so
the same request gives the same bars and a longer request extends a shorter
one. From the start on, the bars are the live market's recorded minutes. Bars
of every size are aggregates of those minutes, aligned to UTC (weeks start on
Monday, months on the 1st). Prices are mids: BID and ASK are shifted by half
the spread, TRADES carries the generated volume (IB refuses TRADES for FX, and
so does this); each price then lies on the tick grid (TRADES, BID, ASK) or on
half ticks (MIDPOINT), as IB's. With the sim's ``market.sessions`` on, only
the minutes inside the instrument's sessions are bars (:mod:`trader.sim.trading_hours`: the
exchange calendar's sessions and holidays, stocks 04:00-20:00 ET, futures the
Globex day, FX 24x5) and a daily bar is one session, labelled by its date;
off, the market runs around the clock and days are UTC days. ``useRTH=1``
keeps only the bars that start in regular trading hours either way. With
``formatDate=1`` intraday bars are dated in the exchange's time zone
(``20261207 09:30:00 US/Eastern``), with ``2`` in epoch seconds; days and
longer are ``YYYYMMDD``.

Bars under a minute ("1 secs" to "30 secs") are aggregates of one-second bars
drawn inside each minute: a seeded Brownian bridge per ``(seed, conid, minute)``
from the minute's open through its high and its low to its close, so they add
back up to exactly that minute. The live market's open minute is spread over
the seconds that have passed, so no bar lies after the end; until that minute
is over, its seconds are redrawn as it changes (:mod:`trader.sim.bar_arrays`). IB's step-size
limits apply.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from trader.brokers.ib import durations
from trader.brokers.ib.durations import BAR_SECONDS, MAX_DURATION
from trader.domain import SecType
from trader.sim.bar_arrays import BarArrays, seconds_from_minutes
from trader.sim.market_state import MarketState
from trader.sim.trading_hours import TradingHours
from trader.sim.wire import Field

__all__ = [
    "BAR_SECONDS", "MAX_SECOND_BAR_DURATION", "BarArrays", "HistoryError", "HistoryRequest", "bar_rows", "build_bars",
    "check_keep_up_to_date", "check_length", "check_request", "in_session", "no_data", "seconds_from_minutes",
]

_SHOWS = {"TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"}
MAX_MINUTES = 3 * 366 * 1440  # three years of minutes per request
MAX_BARS = 50_000
# IB's step sizes: the longest duration it serves for each bar size under a minute (the sim enforces these).
MAX_SECOND_BAR_DURATION: dict[str, int] = {name: MAX_DURATION[s] for name, s in BAR_SECONDS.items() if s < 60}
MIN_UPDATING_BAR_SECONDS = 5  # IB keeps bars up to date from 5 secs up
_TOO_LONG = "Historical Market Data Service error message:Time length exceed max."


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
    use_rth: bool = False

    @classmethod
    def parse(cls, end: str, duration: str, now: datetime, *rest: Any) -> HistoryRequest:
        """Return the request an IB ``endDateTime`` (capped at ``now``) and ``durationStr`` name; HistoryError if bad."""
        try:
            return cls(min(durations.end_time(end, now), now), durations.duration_seconds(duration), *rest)
        except ValueError as exc:
            raise HistoryError(f"Historical Market Data Service error message:{exc}") from None


def _synthetic(state: MarketState, seed: int, first: int, end: int, anchor: int) -> BarArrays:
    """Return the synthetic minutes ``first .. end-1`` of the walk that ends at the start price at ``anchor``."""
    end = min(end, anchor)
    if first >= end:
        return BarArrays.of([])
    inst = state.instrument
    sigma = inst.volatility * math.sqrt(60 / durations.DURATION_UNITS["Y"])
    days = range(first // 1440, (end - 1) // 1440 + 1)
    z_parts, wick_parts, vol_parts = [], [], []
    for day in days:
        rng = np.random.default_rng([seed, inst.conid, day])
        z_parts.append(rng.standard_normal(1440))
        wick_parts.append(np.abs(rng.standard_normal((2, 1440))))
        vol_parts.append(rng.gamma(2.0, 0.5, 1440))
    base = days[0] * 1440
    lo, hi = first - base, end - base  # slice of the minutes wanted
    increments = sigma * np.concatenate(z_parts)[lo:hi]
    wick = np.concatenate(wick_parts, axis=1)[:, lo:hi]
    volume = np.round(np.concatenate(vol_parts)[lo:hi] * inst.trade_size * 20)
    # close(anchor-1) is the start price, close(end-1) that less the steps in between;
    # walk back: close(m) = close(m+1) - inc(m+1).
    start_log = math.log(float(state.close or inst.price)) - sigma * _walk_between(seed, inst.conid, end, anchor)
    after = np.concatenate([np.cumsum(increments[::-1])[::-1][1:], [0.0]])
    closes = np.exp(start_log - after)
    opens = np.concatenate([[closes[0] * math.exp(-increments[0])], closes[:-1]])
    highs = np.maximum(opens, closes) * np.exp(0.5 * sigma * wick[0])
    lows = np.minimum(opens, closes) * np.exp(-0.5 * sigma * wick[1])
    starts = np.arange(first, end, dtype=np.int64) * 60
    return BarArrays(starts, opens, highs, lows, closes, volume, (volume > 0).astype(np.int64))


def _walk_between(seed: int, conid: int, end: int, anchor: int) -> float:
    """Return the sum of the walk's unit steps of minutes ``end .. anchor-1`` (0 if there are none).

    A request that ends before the live market started still sits on the one walk that
    reaches the start price at ``anchor``: its last close is that price less these steps.
    """
    total = 0.0
    for day in range(end // 1440, (anchor - 1) // 1440 + 1) if end < anchor else ():
        z = np.random.default_rng([seed, conid, day]).standard_normal(1440)  # the day's first draws
        total += float(z[max(end - day * 1440, 0):min(anchor - day * 1440, 1440)].sum())
    return total


def _minutes(state: MarketState, seed: int, first: int, end: int) -> BarArrays:
    """Return the minutes ``first .. end-1``: synthetic before the live market started, recorded after."""
    live = state.minutes  # in time order, one bar a minute
    m = _synthetic(state, seed, first, end, live[0].minute)
    lo, hi = (bisect.bisect_left(live, minute, key=attrgetter("minute")) for minute in (first, end))
    return m + BarArrays.of(live[lo:hi])


def _seconds(state: MarketState, seed: int, request: HistoryRequest, size: int) -> BarArrays:
    """Return the one-second bars of the ``size``-second bars that start within the request's window."""
    end = request.end.timestamp()
    last = math.ceil(end / size) - 1
    first = min(math.ceil((end - request.duration_seconds) / size), last)
    lo, hi = first * size, math.ceil(end)  # the seconds [lo, hi); the last one holds the end
    end_minute = -(-hi // 60)
    m = _minutes(state, seed, lo // 60, end_minute)
    spans = np.full(len(m), 60, dtype=np.int64)
    if len(m) and hi % 60 and m.start[-1] == state.minutes[-1].minute * 60 == (end_minute - 1) * 60:
        spans[-1] = hi % 60  # the live market's open minute: only its elapsed seconds
    inst = state.instrument
    tick = float(inst.tick_size)
    seconds = seconds_from_minutes(m, spans, seed=seed, conid=inst.conid, tick=tick,
                                   grid_offset=(inst.spread_ticks % 2) * tick / 2)  # where mids lie
    return seconds.select((seconds.start >= lo) & (seconds.start < hi))


def _buckets(starts: np.ndarray, bar_size: str) -> np.ndarray:
    if bar_size == "1 week":
        return (starts // 86400 + 3) // 7  # epoch day 0 was a Thursday; weeks start on Monday
    if bar_size == "1 month":
        months = starts.astype("datetime64[s]").astype("datetime64[M]")
        return months.astype(np.int64)  # months since 1970-01
    return starts // BAR_SECONDS[bar_size]


def _bucket_start(bucket: int, bar_size: str) -> datetime:
    if bar_size == "1 week":
        return datetime.fromtimestamp((bucket * 7 - 3) * 86400, UTC)
    if bar_size == "1 month":
        return datetime(1970 + bucket // 12, bucket % 12 + 1, 1, tzinfo=UTC)
    return datetime.fromtimestamp(bucket * BAR_SECONDS[bar_size], UTC)


def _date_texts(buckets: np.ndarray, bar_size: str, format_date: int, zone: str = "") -> list[str]:
    """Return the bars' dates as IB writes them: ``YYYYMMDD`` for days and longer, else time or epoch.

    An intraday time is written in ``zone`` (TWS's name of the exchange's time zone), or in UTC.
    """
    if bar_size in ("1 week", "1 month"):
        return [_bucket_start(int(b), bar_size).strftime("%Y%m%d") for b in buckets]
    starts = buckets * BAR_SECONDS[bar_size]
    if BAR_SECONDS[bar_size] >= 86400:
        return [d.replace("-", "") for d in np.datetime_as_string(starts.astype("datetime64[s]"), unit="D")]
    if format_date == 2:
        return [str(t) for t in starts.tolist()]
    local = starts
    if zone:
        local = pd.DatetimeIndex(starts * 10**9, tz="UTC").tz_convert(zone).tz_localize(None).asi8 // 10**9
    iso = np.datetime_as_string(local.astype("datetime64[s]"), unit="s")  # YYYY-MM-DDTHH:MM:SS
    suffix = zone or "UTC"
    return [f"{t[0:4]}{t[5:7]}{t[8:10]} {t[11:]} {suffix}" for t in iso]


def check_length(request: HistoryRequest) -> None:
    """Raise HistoryError if ``request`` spans more than IB serves at once (its step sizes, or too many bars)."""
    size = BAR_SECONDS[request.bar_size]
    if size < 60:
        too_long = request.duration_seconds > MAX_SECOND_BAR_DURATION[request.bar_size]
    else:
        too_long = request.duration_seconds // 60 > MAX_MINUTES or request.duration_seconds // size > MAX_BARS
    if too_long:
        raise HistoryError(_TOO_LONG)


def no_data(state: MarketState, what_to_show: str) -> str:
    """Return IB's text for a historical request whose range holds no bars."""
    c = state.instrument.contract
    name = c.local_symbol if c.sec_type is SecType.CASH else c.symbol
    return (f"Historical Market Data Service error message:HMDS query returned no data: "
            f"{name}@{c.exchange} {what_to_show.strip().title()}")


def check_keep_up_to_date(bar_size: str) -> None:
    """Raise HistoryError if IB refuses to keep ``bar_size`` bars up to date (sizes under 5 secs)."""
    if BAR_SECONDS.get(bar_size, MIN_UPDATING_BAR_SECONDS) < MIN_UPDATING_BAR_SECONDS:
        raise HistoryError(f"Historical Market Data Service error message:keepUpToDate is not supported for "
                           f"{bar_size} bars (bar sizes of {MIN_UPDATING_BAR_SECONDS} secs and up)")


def check_request(state: MarketState, request: HistoryRequest) -> None:
    """Raise HistoryError if TWS refuses ``request``'s bar size or price type for ``state``'s instrument."""
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


def build_bars(state: MarketState, seed: int, request: HistoryRequest,
               hours: TradingHours | None = None) -> list[tuple[Field, ...]]:
    """Return the bars of ``request`` as historicalData rows (date, o, h, l, c, volume, wap, count).

    ``hours`` (the instrument's, see :mod:`trader.sim.trading_hours`) drops the bars outside
    its sessions (or outside RTH for a ``use_rth`` request) and dates bars as TWS does; without
    it the market runs around the clock and times are written in UTC.
    """
    check_request(state, request)
    size = BAR_SECONDS[request.bar_size]
    if size < 60:
        if request.duration_seconds > MAX_SECOND_BAR_DURATION[request.bar_size]:
            raise HistoryError(_TOO_LONG)
        return bar_rows(in_session(_seconds(state, seed, request, size), hours, request, 1), state, request, hours)
    end_minute = math.ceil(request.end.timestamp() / 60)
    first = end_minute - request.duration_seconds // 60
    if end_minute - first > MAX_MINUTES or (end_minute - first) * 60 // size > MAX_BARS:
        raise HistoryError(_TOO_LONG)
    return bar_rows(in_session(_minutes(state, seed, first, end_minute), hours, request, 60), state, request, hours)


def _decimals(step: Decimal) -> int:
    return max(0, -int(step.normalize().as_tuple().exponent))


def _on_grid(prices: np.ndarray, grid: Decimal) -> np.ndarray:
    """Return ``prices`` at the nearest multiple of ``grid`` (monotone: o and c stay inside h..l)."""
    return np.round(np.round(prices / float(grid)) * float(grid), _decimals(grid))


def in_session(bars: BarArrays, hours: TradingHours | None, request: HistoryRequest, span: int) -> BarArrays:
    """Return the bars that start inside a session (or inside RTH for a ``use_rth`` request)."""
    keep = hours.mask(bars.start, request.use_rth, span=span) if hours is not None else None
    return bars if keep is None else bars.select(keep)


def bar_rows(m: BarArrays, state: MarketState, request: HistoryRequest, hours: TradingHours | None = None, *,
             quoted: bool = False) -> list[tuple[Field, ...]]:
    """Aggregate ``m`` into the request's bars, priced and formatted as historicalData rows.

    ``m`` holds mids (BID and ASK are shifted half the spread from them), or with
    ``quoted`` the prices of the request's own kind, left as they are.
    """
    if len(m) == 0:
        return []
    inst = state.instrument
    what = request.what_to_show.upper()
    if request.bar_size == "1 day" and hours is not None and (hours.sessions or request.use_rth):
        buckets = hours.session_labels(m.start)  # one bar a session, labelled by its date, as IB's
    else:
        buckets = _buckets(m.start, request.bar_size)
    starts = np.flatnonzero(np.concatenate([[True], buckets[1:] != buckets[:-1]]))
    ends = np.concatenate([starts[1:], [len(buckets)]]) - 1
    half = float(inst.tick_size) * inst.spread_ticks / 2
    shift = 0.0 if quoted else {"BID": -half, "ASK": half}.get(what, 0.0)
    # Trades, bids and asks lie on the tick grid; mids on it or half way between two ticks.
    grid = inst.tick_size / 2 if what in ("MIDPOINT", "BID_ASK") else inst.tick_size
    opens = _on_grid(m.open[starts] + shift, grid)
    highs = _on_grid(np.maximum.reduceat(m.high, starts) + shift, grid)
    lows = _on_grid(np.minimum.reduceat(m.low, starts) + shift, grid)
    closes = _on_grid(m.close[ends] + shift, grid)
    volumes = np.add.reduceat(m.volume, starts)
    counts = np.add.reduceat(m.count, starts)
    waps = np.round(np.add.reduceat(m.close, starts) / (ends - starts + 1), _decimals(inst.tick_size) + 2)
    dates = _date_texts(buckets[starts], request.bar_size, request.format_date,
                        hours.timezone if hours is not None else "")
    prices = (dates, opens.tolist(), highs.tolist(), lows.tolist(), closes.tolist())
    if what != "TRADES":
        return [(*row, -1, -1, -1) for row in zip(*prices, strict=True)]
    return list(zip(*prices, volumes.astype(np.int64).tolist(), waps.tolist(), counts.tolist(), strict=True))
