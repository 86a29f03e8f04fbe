"""History as a cache: the market store answers what it holds, the broker only what is missing.

A request (IB's ``durationStr`` back from ``endDateTime``, as trader_service's
``history`` takes it) covers the UTC range ``[end - duration, end)``, counted
as tws-sim counts it (``D`` = 86400 s, ``W`` 7 days, ``M`` 30, ``Y`` 365).
The cache works in whole UTC days:

- a **closed** day (ended at least :data:`SETTLE` ago) is final: the store
  answers it when it holds it, else the broker is asked for each run of
  missing closed days (one request per run, a day more than the run so a
  session that crosses midnight is whole, split at :func:`max_days`) and the
  run is written back as one window, replacing whatever was there;
- the day still forming (and one closed less than :data:`SETTLE` ago) is
  never stored: the broker answers it on every request;
- a request with no closed day in it goes to the broker unchanged;
- a day with no session in the instrument's calendar (a weekend, a holiday:
  :mod:`trader.data.calendars`, by the contract's exchange, else the key's sec
  type) is never asked of the broker: it holds no bars. A run of missing days
  bridges such days (Friday and Monday are one request, as before the
  calendars), but never starts or ends on one. For daily bars a day is a
  session's date; for intraday ones any minute of its extended hours counts.

The store "holds" a day when the cache wrote it (its windows are kept in the
record ``history_cache/<key>@<size>``, so a weekend written as an empty window
is not asked again) or when other writers (history_service) left bars in that
day *and* after it: the last stored day could be the tip of a download made
while that day was open, and is asked again until something follows it.

Only the series the store holds under a contract key is cached: ``TRADES``,
and ``MIDPOINT`` for currency pairs (IB has no trades for them); any other
``what_to_show`` goes to the broker. The store keeps full sessions (what
``use_rth=False`` answers, as history_service downloads them): a ``use_rth``
request is answered from them, cut on read to the bars whose start lies in
the calendar's regular hours, the missing days fetched as full sessions and
stored, and only the forming day asked with ``use_rth``. That cut equals IB's
RTH answer only for bars that never straddle the regular open or close
(09:30/16:00 ET, 08:30/15:00 CT: sizes dividing 30 minutes), so other sizes
with ``use_rth`` go to the broker. Bar sizes from 1 min to 1 day are cached.
The store or the calendar failing (down, full, corrupt; a range the calendar
cannot answer) never fails a request: it is logged and the broker answers the
whole request, as without a cache. An instrument no calendar knows is cached
as before the calendars (every day asked; ``use_rth`` to the broker).

The days are counted on the broker's clock when the caller gives it (``now``:
trader_service asks ``reqCurrentTime`` per request) and the cache stands aside
when that clock is more than :data:`CLOCK_SKEW` from this machine's: a tws-sim
replay (its "now" is the replayed moment) answers the whole request from the
store it replays, with nothing from its future, and nothing is written. Two
guards hold whatever clock is used (:class:`ForeignClock`: nothing is stored,
the broker answers the whole request): an answer for a missing run with no bar
near it, and an answer that ends before bars the store already holds in the
run (a truncated answer would erase them).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from trader.brokers.ib.durations import duration_text, request_range
from trader.data.calendars import SessionWindows, TradingCalendar, calendar_for, calendar_for_key
from trader.data.store import MarketStore, SymbolMeta, contract_fields
from trader.domain import Bar
from trader.errors import NotFound, TraderError
from trader.strategy.bars import parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["CLOCK_SKEW", "SETTLE", "Fetch", "ForeignClock", "HistoryCache", "cached_series", "max_days"]

DAY = timedelta(days=1)
SETTLE = timedelta(minutes=10)  # how long after a day's end its bars are taken as final
CLOCK_SKEW = timedelta(hours=1)  # a broker clock further than this from ours is a replay's: the cache stands aside
RECORD_KIND = "history_cache"
_CALENDAR_SEC_TYPES = frozenset({"STK", "FUT", "CASH", "IND", "OPT"})  # those trader/data/calendars.py knows
RTH_ALIGN = 1800  # regular hours open and close on half hours: a bar dividing this lies wholly in or out of them

Fetch = Callable[[str, str, bool], Awaitable[list[Bar]]]
"""Ask the broker: ``fetch(end, duration, use_rth)`` with the request's other fields fixed."""


def cached_series(key: str) -> str:
    """Return the ``what_to_show`` the store holds for ``key``: MIDPOINT for a currency pair, else TRADES."""
    return "MIDPOINT" if ".CASH." in f".{key}." else "TRADES"


def max_days(bar_seconds: int) -> int:
    """Return the most days asked in one broker request for bars of ``bar_seconds``.

    Longer than IB's step-size table for bars under 5 minutes (1 D for 1 min,
    2 D for 2 mins: :data:`trader.brokers.ib.durations.MAX_DURATION`), which
    the IB download source follows: a run here is asked as one request of a
    day more than the run, so that a session crossing midnight comes whole,
    and fewer, longer requests suit the pacing of a trader_service that also
    warms strategies up. Should IB refuse one, the whole original request is
    sent instead (:meth:`HistoryCache.history`), uncached.
    """
    return 7 if bar_seconds < 300 else 30 if bar_seconds < 3600 else 364  # IB takes D up to 365, and we ask one more


class ForeignClock(Exception):
    """The broker answered a run of days with bars nowhere near them: its "now" is not this machine's."""


class HistoryCache:
    """Answer history requests from the store first; fetch, write back and remember the missing days."""

    def __init__(self, open_store: Callable[[], MarketStore], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._open_store = open_store  # trader_service's market_store: opened once, under its lock
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def history(self, key: str, fetch: Fetch, *, end: str, duration: str, bar_size: str,
                      what_to_show: str, use_rth: bool, contract: Any = None,
                      now: datetime | None = None) -> list[Bar]:
        """Return the bars of the request, from the store where it holds them and from ``fetch`` for the rest.

        ``now`` is the broker's time, when known; this machine's clock otherwise.
        """
        ours = self.clock()
        if now is not None and abs(now - ours) > CLOCK_SKEW:
            log.info("history %s: the broker's clock says %s, ours %s (a replay): the broker answers, uncached",
                     key, now.isoformat(), ours.isoformat())
            return await fetch(end, duration, use_rth)
        now = ours if now is None else now
        plan = self._plan(key, end, duration, bar_size, what_to_show, use_rth, contract, now)
        if plan is None:
            return await fetch(end, duration, use_rth)
        lo, hi, seconds, cal = plan
        lock = self._locks.setdefault(f"{key}@{seconds}", asyncio.Lock())
        async with lock:
            try:
                store = await asyncio.to_thread(self._open_store)
                closed_end = _last_closed(hi, now)
                read_to = min(closed_end + 5 * DAY, _day(now) + DAY)
                quiet = await asyncio.to_thread(_sessionless, cal, _day(lo), closed_end, seconds)
                rth = await asyncio.to_thread(cal.windows, lo - DAY, hi, use_rth=True) if use_rth and cal else None
                held = await asyncio.to_thread(_Held.read, store, key, short_bar_size(seconds), lo, closed_end,
                                               read_to, quiet)
            except Exception as exc:  # noqa: BLE001 - the store never fails a request
                log.warning("history %s: the market store or calendar is unavailable (%s): asking the broker", key,
                            exc)
                return await fetch(end, duration, use_rth)
            try:
                return await self._answer(store, held, fetch, key, end, (lo, hi, closed_end), seconds, bar_size,
                                          contract, rth)
            except ForeignClock as exc:
                log.warning("history %s: %s: asking the broker for the whole, uncached", key, exc)
                return await fetch(end, duration, use_rth)
            except TraderError as exc:  # a part refused (IB: "HMDS query returned no data" for a weekend)
                log.warning("history %s: a part of the request was refused (%s): asking the broker for the whole",
                            key, exc)
                return await fetch(end, duration, use_rth)

    def _plan(self, key: str, end: str, duration: str, bar_size: str, what_to_show: str, use_rth: bool,
              contract: Any, now: datetime) -> tuple[datetime, datetime, int, TradingCalendar | None] | None:
        """Return the request's range, bar seconds and calendar if the cache can serve part of it, else None."""
        if what_to_show.upper() != cached_series(key):
            return None
        try:
            seconds = parse_bar_size(bar_size)
            lo, hi = request_range(end, duration, now)
        except (ValueError, TraderError):
            return None
        if not 60 <= seconds <= 86400 or 86400 % seconds or _day(lo) + DAY > _last_closed(hi, now):
            return None  # no whole closed day in it
        cal = _calendar(key, contract)
        if use_rth and (cal is None or RTH_ALIGN % seconds):
            return None  # stored full sessions cannot be cut to IB's RTH bars of this size (or of no calendar)
        return lo, hi, seconds, cal

    async def _answer(self, store: MarketStore, held: _Held, fetch: Fetch, key: str, end: str,
                      span: tuple[datetime, datetime, datetime], seconds: int, bar_size: str,
                      contract: Any, rth: SessionWindows | None) -> list[Bar]:
        """Return the request's bars: the held days' from the store, the missing runs' and the open tail's fetched.

        Missing runs are fetched as full sessions (they are stored); with ``rth`` (a ``use_rth`` request's
        regular hours) the answer is cut to them and the open tail asked with ``use_rth``.
        """
        lo, hi, closed_end = span
        frames = [held.bars]
        asked = 0
        for run_lo, run_hi in held.missing(_day(lo), closed_end, max_days(seconds)):
            days = round((run_hi - run_lo) / DAY)
            bars = await fetch(run_hi.strftime("%Y%m%d-%H:%M:%S"), f"{days + 1} D", False)
            if bars and not any(run_lo - 2 * DAY <= b.start < run_hi + DAY for b in bars):
                raise ForeignClock(f"asked for {run_lo:%Y-%m-%d}..{run_hi:%Y-%m-%d}, the broker answered "
                                   f"{bars[0].start:%Y-%m-%d %H:%M}..{bars[-1].start:%Y-%m-%d %H:%M}")
            frame = _frame(bars, run_lo, run_hi)
            kept = held.stored_last(run_lo, run_hi)
            if kept is not None and (not len(frame) or frame.index[-1] < kept):
                raise ForeignClock(f"the broker's answer for {run_lo:%Y-%m-%d}..{run_hi:%Y-%m-%d} ends before "
                                   f"the stored bar at {kept:%Y-%m-%d %H:%M}: it is not written over them")
            asked += 1
            frames.append(frame)
            await asyncio.to_thread(self._write, store, key, seconds, frame, run_lo, run_hi, contract)
        tail: list[Bar] = []
        if hi > closed_end:  # the open part: the broker answers it, it is not stored
            ask = duration_text((hi - closed_end).total_seconds(), seconds)
            tail = [b for b in await fetch(end, ask, rth is not None) if b.start >= closed_end]
            asked += 1
        full = [f for f in frames if len(f)]
        frame = pd.concat(full) if full else _frame([], lo, hi)
        frame = frame[(frame.index > pd.Timestamp(lo) - pd.Timedelta(seconds=seconds)) & (frame.index < hi)]
        if rth is not None and len(frame):
            frame = frame[rth.locate(frame.index.asi8 // 10**9) >= 0]  # bars starting in regular hours
        counts = frame["bar_count"] if "bar_count" in frame.columns else pd.Series(math.nan, index=frame.index)
        out = [Bar(key, t.to_pydatetime(), bar_size, o, h, low, c, v, None if math.isnan(n) or n < 0 else int(n))
               for t, o, h, low, c, v, n in zip(frame.index, frame["open"], frame["high"], frame["low"],
                                                 frame["close"], frame["volume"], counts.astype(float), strict=True)]
        log.info("history %s %s%s %s..%s: %d bars, %d days from the store, %d without a session, %d broker "
                 "requests", key, bar_size, " RTH" if rth is not None else "", lo.isoformat(), hi.isoformat(),
                 len(out) + len(tail), len(held.days - held.quiet), len(held.quiet), asked)
        return sorted(out, key=lambda b: b.start) + tail

    def _write(self, store: MarketStore, key: str, seconds: int, frame: pd.DataFrame, lo: datetime, hi: datetime,
               contract: Any) -> None:
        """Write one fetched run back as a window and remember it; a failure is logged, never raised."""
        size = short_bar_size(seconds)
        fields = contract_fields(contract)
        try:
            store.write_bars(key, size, frame, start=lo, end=hi, meta=SymbolMeta(key=key, source="ib",
                                                                                   contract=fields))
            _Held.remember(store, key, size, lo, hi)
        except Exception as exc:  # noqa: BLE001 - the answer stands; the window is asked again next time
            log.warning("history %s: %s..%s not stored (%s)", key, lo.isoformat(), hi.isoformat(), exc)


class _Held:
    """What the store holds of one key's bars of one size around a request."""

    def __init__(self, bars: pd.DataFrame, days: set[datetime], quiet: set[datetime],
                 stored: pd.DatetimeIndex | None = None) -> None:
        self.bars, self.days, self.quiet = bars, days, quiet
        self.stored = stored if stored is not None else pd.DatetimeIndex([], tz="UTC")  # every stored bar read

    def stored_last(self, lo: datetime, hi: datetime) -> pd.Timestamp | None:
        """Return the last bar the store holds in ``[lo, hi)`` (held day or not), None if it holds none."""
        inside = self.stored[(self.stored >= pd.Timestamp(lo)) & (self.stored < pd.Timestamp(hi))]
        return inside[-1] if len(inside) else None

    @classmethod
    def read(cls, store: MarketStore, key: str, size: str, lo: datetime, closed_end: datetime,
             read_to: datetime, quiet: set[datetime]) -> _Held:
        """Read the stored bars of the closed days from ``lo``'s on and which of those days are held.

        The read goes on to ``read_to``, a few days more, to see whether anything follows the last stored day.
        ``quiet`` are the days without a session: held, with whatever the store has of them (nothing, usually).
        """
        first = _day(lo)
        windows = _windows(store, key, size)
        try:
            bars = store.read_bars(key, size, first, read_to)
        except NotFound:
            bars = pd.DataFrame()
        days = {first + DAY * i for i in range(round((closed_end - first) / DAY))}
        held = {d for d in days if d in quiet or any(w_lo <= d and d + DAY <= w_hi for w_lo, w_hi in windows)}
        every = bars.index if len(bars) else None
        if len(bars):
            stored = sorted({_day(t.to_pydatetime()) for t in bars.index})
            held |= {d for d in stored[:-1] if d in days}  # every stored day but the last has data after it
            bars = bars[bars.index < closed_end]
            bars = bars[[_day(t.to_pydatetime()) in held for t in bars.index]] if len(bars) else bars
        return cls(bars, held, quiet, every)

    def missing(self, first: datetime, closed_end: datetime, most: int) -> list[tuple[datetime, datetime]]:
        """Return the runs of closed days not held, each at most ``most`` days long.

        A run goes on over days without a session (Friday to Monday is one run), never starts or ends on one.
        """
        runs: list[tuple[datetime, datetime]] = []
        day = first
        while day < closed_end:
            if day not in self.days:
                if runs and self._bridged(runs[-1][1], day) and (day - runs[-1][0]) < most * DAY:
                    runs[-1] = (runs[-1][0], day + DAY)
                else:
                    runs.append((day, day + DAY))
            day += DAY
        return runs

    def _bridged(self, run_end: datetime, day: datetime) -> bool:
        """Return whether every day from ``run_end`` to ``day`` (excluded) has no session."""
        return all(run_end + DAY * i in self.quiet for i in range(round((day - run_end) / DAY)))

    @staticmethod
    def remember(store: MarketStore, key: str, size: str, lo: datetime, hi: datetime) -> None:
        """Add ``[lo, hi)`` to the windows the cache wrote for ``key``, merged."""
        spans = sorted([*_windows(store, key, size), (lo, hi)])
        merged: list[tuple[datetime, datetime]] = []
        for s_lo, s_hi in spans:
            if merged and s_lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], s_hi))
            else:
                merged.append((s_lo, s_hi))
        store.put_record(RECORD_KIND, f"{key}@{size}", {"key": key, "bar_size": size, "windows": [
            [a.isoformat(), b.isoformat()] for a, b in merged]})


def _windows(store: MarketStore, key: str, size: str) -> list[tuple[datetime, datetime]]:
    try:
        record = store.get_record(RECORD_KIND, f"{key}@{size}")
    except NotFound:
        return []
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in record.get("windows", [])]


def _calendar(key: str, contract: Any) -> TradingCalendar | None:
    """Return the calendar the instrument trades by (its contract's exchange, else its key's sec type), or None."""
    try:
        if contract is not None:
            if str(getattr(contract, "sec_type", "")) not in _CALENDAR_SEC_TYPES:
                return None  # e.g. CMDTY metals on SMART: not the stock calendar its exchange would give
            exchange = getattr(contract, "primary_exchange", "") or getattr(contract, "exchange", "")
            return calendar_for(exchange, getattr(contract, "sec_type", None))
        return calendar_for_key(key)
    except TraderError as exc:  # no calendar for it: cached by whole UTC days, every day asked
        log.debug("history %s: no trading calendar (%s)", key, exc)
        return None


def _sessionless(cal: TradingCalendar | None, first: datetime, closed_end: datetime, seconds: int) -> set[datetime]:
    """Return the UTC days of ``[first, closed_end)`` in which ``cal`` has no session (none without a calendar).

    For daily bars a day is a session's date; for intraday ones, a day no minute of an extended session touches.
    """
    if cal is None or closed_end <= first:
        return set()
    days = [first + DAY * i for i in range(round((closed_end - first) / DAY))]
    w = cal.windows(first, closed_end)
    if seconds >= 86400:
        dates = {label.date() for label in w.labels}
        return {d for d in days if d.date() not in dates}
    quiet = set()
    for d in days:
        start = int(d.timestamp())
        before = int(np.searchsorted(w.opens, start + 86400, side="left"))  # sessions opening before the day ends
        if before == 0 or int(w.closes[before - 1]) <= start:  # sessions do not overlap: the last closes last
            quiet.add(d)
    return quiet


def _day(moment: datetime) -> datetime:
    """Return the UTC midnight starting ``moment``'s day."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _last_closed(hi: datetime, now: datetime) -> datetime:
    """Return the end of the last closed day a request ending at ``hi`` touches (days before it are final)."""
    return min(_day(now - SETTLE), _day(hi - timedelta(microseconds=1)) + DAY)


def _frame(bars: list[Bar], lo: datetime, hi: datetime) -> pd.DataFrame:
    """Return the broker's bars in ``[lo, hi)`` as a stored bar frame."""
    inside = [b for b in bars if lo <= b.start < hi]
    index = pd.DatetimeIndex([b.start for b in inside], name="time").as_unit("ns")
    if index.tz is None:
        index = index.tz_localize("UTC")
    frame = pd.DataFrame({"open": [b.open for b in inside], "high": [b.high for b in inside],
                          "low": [b.low for b in inside], "close": [b.close for b in inside],
                          "volume": [b.volume for b in inside]}, index=index, dtype="float64")
    if inside and all(b.count is not None for b in inside):  # none for MIDPOINT bars: no count is invented
        frame["bar_count"] = [b.count for b in inside]
    return frame
