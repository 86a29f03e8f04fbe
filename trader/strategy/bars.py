"""Bars: bar sizes in IB's terms, ticks to bars as an Rx operator, and bars as DataFrames.

Only IB's historical bar sizes are valid, so warm-up history and live bars
match; ``"5s"`` and IB's ``"5 secs"`` both parse, and ``Bar.size`` is the short one.

:func:`aggregate_bars` buckets ticks on the Unix epoch (``"1d"`` is a UTC day,
not a session) and emits a bar at the first tick of a later bucket or, failing
that, by a timer when the scheduler's clock passes the bar's end + ``grace``.
``tick.time`` and the scheduler must share a clock: UTC wall time live
(ib_async stamps ticks on arrival; ``AsyncIOScheduler.now`` is wall time),
virtual time in tests. Each bar is emitted once; later ticks for its bucket are
dropped as late, and each late tick doubles that subscription's grace (up to
``MAX_GRACE``), since it means the consumer lags behind the ticks' clock. Bad data is dropped, never an error, since an error would end
the strategy's subscription; drops are counted in ``stats`` and logged (a WARNING
the first time for each kind). The timer runs on the ``scheduler`` argument, else the one
given to ``subscribe``, else an ``AsyncIOScheduler`` on the running loop, else
``TimeoutScheduler`` (a thread). The live service passes
``AsyncIOScheduler(loop)`` and feeds ticks on that loop: it is not thread-safe.

:func:`bars_frame` and :class:`RollingBars` build what ``Strategy.signals``
reads: float64 ``open high low close volume`` on a UTC index ``time`` of starts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import ImmediateScheduler, TimeoutScheduler, TrampolineScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

from trader.domain import Bar, Tick

__all__ = [
    "BAR_COLUMNS",
    "BAR_SIZES",
    "BarAggregator",
    "RollingBars",
    "aggregate_bars",
    "bars_frame",
    "ib_bar_size",
    "ib_duration",
    "parse_bar_size",
    "short_bar_size",
]

log = logging.getLogger(__name__)

#: The columns of the DataFrame ``Strategy.signals`` reads, in order.
BAR_COLUMNS = ("open", "high", "low", "close", "volume")

EPOCH = datetime.fromtimestamp(0, UTC)
DAY = 86_400
MIN_GRACE = timedelta(milliseconds=50)  # what a grace of 0 becomes after a late tick
MAX_GRACE = timedelta(seconds=5)
# IB's longest request, in seconds, for each bar size under a minute (its "step sizes" table).
MAX_SECONDS_DURATION = {1: 1800, 5: 3600, 10: 14400, 15: 14400, 30: 28800}

# unit letter -> (IB's word, its seconds, the counts IB takes as a historical bar size)
_UNITS: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "s": ("sec", 1, (1, 5, 10, 15, 30)),
    "m": ("min", 60, (1, 2, 3, 5, 10, 15, 20, 30)),
    "h": ("hour", 3600, (1, 2, 3, 4, 8)),
    "d": ("day", DAY, (1,)),
}
_SHORT = {n * secs: f"{n}{u}" for u, (_, secs, counts) in _UNITS.items() for n in counts}
# IB spells one second "1 secs", but "1 min", "1 hour", "1 day".
_IB = {
    n * secs: f"{n} {word}{'s' if n > 1 or u == 's' else ''}"
    for u, (word, secs, counts) in _UNITS.items()
    for n in counts
}
BAR_SIZES: tuple[str, ...] = tuple(_SHORT.values())
_PATTERN = re.compile(r"(\d+)\s*(s|secs?|m|mins?|h|hours?|d|days?)")


def parse_bar_size(text: str) -> int:
    """Return the seconds of bar size ``text`` ("5s", "1m" or IB's "5 secs", "1 min")."""
    match = _PATTERN.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if match is not None:
        count, (_, secs, counts) = int(match[1]), _UNITS[match[2][0]]
        if count in counts:
            return count * secs
    raise ValueError(
        f"bar size {text!r} is not one of IB's bar sizes: {', '.join(BAR_SIZES)}"
        " (IB's spelling, such as '5 secs', '1 min', '2 mins', '1 hour', '1 day', also works)"
    )


def _known(seconds: int) -> int:
    if seconds not in _SHORT:
        raise ValueError(f"{seconds!r} s is not one of IB's bar sizes: {', '.join(BAR_SIZES)}")
    return seconds


def short_bar_size(seconds: int) -> str:
    """Return the short name of a bar size ("5s", "1m", "1h", "1d"), as in ``Bar.size``."""
    return _SHORT[_known(seconds)]


def ib_bar_size(seconds: int) -> str:
    """Return IB's ``barSizeSetting`` for a bar size ("5 secs", "1 min", "2 mins", "1 day")."""
    return _IB[_known(seconds)]


def ib_duration(bars: int, seconds: int, *, margin: float = 0.2) -> str:
    """Return an IB ``durationStr`` spanning ``bars`` bars of ``seconds`` plus ``margin``.

    The span is calendar time, so an instrument that does not trade around the
    clock has fewer bars in it; daily bars count five sessions a week. Bars of
    under a minute are capped at the longest duration IB serves for their size
    (``MAX_SECONDS_DURATION``): the rest of a warm-up then comes from live bars.
    """
    if bars < 1:
        raise ValueError(f"bars must be at least 1, got {bars}")
    if _known(seconds) >= DAY:
        days = math.ceil(bars * 7 / 5 * (1 + margin))
    else:
        total = math.ceil(bars * seconds * (1 + margin))
        total = min(total, MAX_SECONDS_DURATION.get(seconds, total))
        if total <= DAY:
            return f"{total} S"
        days = math.ceil(total / DAY)
    # IB takes "S" only up to a day and "D" only up to 365 days.
    return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"


def _price(tick: Tick) -> float | None:
    """Return the last price, else the bid/ask midpoint; None if it is not a positive number."""
    last, bid, ask = tick.last, tick.bid, tick.ask
    if last is not None:
        return last if 0.0 < last < math.inf else None  # NaN fails both comparisons
    if bid is not None and ask is not None and 0.0 < bid < math.inf and 0.0 < ask < math.inf:
        return (bid + ask) / 2.0
    return None


class BarAggregator:
    """The operator :func:`aggregate_bars` returns: call it on a tick Observable.

    ``stats`` counts, over all its subscriptions, the ``ticks`` that went into
    a bar, the ``bars`` emitted, the items ``skipped`` as bad data (no usable
    price, not a Tick, another instrument's tick) and the ``late`` ticks.
    """

    def __init__(
        self, instrument: str, seconds: int, scheduler: abc.SchedulerBase | None, grace: float
    ) -> None:
        if not grace >= 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self.instrument, self.seconds, self.size = instrument, seconds, short_bar_size(seconds)
        self.scheduler, self.grace = scheduler, grace
        self.stats: Counter[str] = Counter(ticks=0, bars=0, skipped=0, late=0)
        self._warned: set[str] = set()

    def __call__(self, source: Observable[Tick]) -> Observable[Bar]:
        def subscribe(
            observer: abc.ObserverBase[Bar], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            window = _Window(self, observer, self._timer_scheduler(scheduler))
            subscription = source.subscribe(
                window.on_next, window.on_error, window.on_completed, scheduler=scheduler
            )
            return CompositeDisposable(subscription, Disposable(window.stop))

        return reactivex.create(subscribe)

    def _timer_scheduler(self, given: abc.SchedulerBase | None) -> abc.SchedulerBase:
        if self.scheduler is not None:
            return self.scheduler
        # These two would block the caller until the timer is due.
        if given is not None and not isinstance(given, ImmediateScheduler | TrampolineScheduler):
            return given
        try:
            return AsyncIOScheduler(asyncio.get_running_loop())
        except RuntimeError:
            return TimeoutScheduler.singleton()

    def drop(self, kind: str, item: object, reason: str) -> None:
        """Count and log an item that goes into no bar (``kind``: "skipped" or "late")."""
        self.stats[kind] += 1
        if kind not in self._warned:  # once per kind: a lagging consumer may drop thousands
            self._warned.add(kind)
            log.warning("bars %s %s: dropped (%s): %r; later drops are only counted", self.instrument, self.size,
                        reason, item)


class _Window:
    """One subscription's open bar and its timer."""

    def __init__(
        self, agg: BarAggregator, observer: abc.ObserverBase[Bar], scheduler: abc.SchedulerBase
    ) -> None:
        self.agg, self.observer, self.scheduler = agg, observer, scheduler
        self.step = timedelta(seconds=agg.seconds)
        self.grace = timedelta(seconds=agg.grace)
        self.lock = threading.RLock()  # a TimeoutScheduler's timer runs on its own thread
        self.timer = SerialDisposable()
        self.done = False
        self.bucket: int | None = None  # the open bar's bucket
        self.closed: int | None = None  # the last bucket emitted
        self.ohlcv = [0.0] * 5
        self.count = 0

    def on_next(self, tick: Any) -> None:
        agg = self.agg
        if not isinstance(tick, Tick):
            agg.drop("skipped", tick, f"not a Tick but a {type(tick).__name__}")
            return
        price = _price(tick)
        if tick.instrument != agg.instrument or price is None:
            agg.drop("skipped", tick, "no usable price" if price is None else "another instrument")
            return
        bucket = (tick.time - EPOCH) // self.step
        size = (tick.last_size or 0.0) if tick.last is not None else 0.0
        with self.lock:
            if self.done:
                return
            if self.bucket is not None and bucket > self.bucket:
                self.emit()
            bar = self.ohlcv
            if self.bucket is None:
                if self.closed is not None and bucket <= self.closed:
                    self.late(tick)
                    return
                self.bucket, self.count, bar[:] = bucket, 0, [price, price, price, price, 0.0]
                due = EPOCH + (bucket + 1) * self.step + self.grace
                self.timer.disposable = self.scheduler.schedule_absolute(due, self.on_timer, bucket)
            elif bucket < self.bucket:
                self.late(tick)
                return
            elif price > bar[1]:
                bar[1] = price
            elif price < bar[2]:
                bar[2] = price
            bar[3] = price
            bar[4] += size
            self.count += 1
            agg.stats["ticks"] += 1

    def late(self, tick: Tick) -> None:
        """Drop a tick whose bar the timer closed, and wait longer for the next bars: the consumer lags."""
        self.agg.drop("late", tick, "its bar was emitted")
        self.grace = min(self.grace * 2, MAX_GRACE) if self.grace else MIN_GRACE

    def on_timer(self, _scheduler: abc.SchedulerBase, bucket: int | None) -> None:
        with self.lock:
            if not self.done and self.bucket == bucket:
                self.emit()

    def emit(self) -> None:
        """Emit the open bar (under the lock; the next bar's timer or ``stop`` replaces its timer)."""
        assert self.bucket is not None
        start = EPOCH + self.bucket * self.step
        open_, high, low, close, volume = self.ohlcv
        bar = Bar(self.agg.instrument, start, self.agg.size, open_, high, low, close, volume, self.count)
        self.closed, self.bucket = self.bucket, None
        self.agg.stats["bars"] += 1
        self.observer.on_next(bar)

    def on_completed(self) -> None:
        with self.lock:
            if not self.done:
                if self.bucket is not None:
                    self.emit()
                self.stop()
                self.observer.on_completed()

    def on_error(self, error: Exception) -> None:
        with self.lock:
            if not self.done:
                self.stop()
                self.observer.on_error(error)

    def stop(self) -> None:
        with self.lock:
            self.done = True
            self.timer.dispose()


def aggregate_bars(
    instrument: str,
    seconds: int,
    *,
    scheduler: abc.SchedulerBase | None = None,
    grace: float = 0.25,
) -> BarAggregator:
    """Return an operator that turns ``instrument``'s ticks into bars of ``seconds``.

    Use it as ``ticks.pipe(aggregate_bars(key, 60, scheduler=AsyncIOScheduler(loop)))``;
    its ``stats`` count ticks, bars and drops. See the module docstring for
    when a bar closes and which scheduler runs the timer.
    """
    return BarAggregator(instrument, seconds, scheduler, grace)


def _ns(time: datetime) -> int:
    return (time - EPOCH) // timedelta(microseconds=1) * 1000


def _values(bar: Bar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def _frame(rows: dict[int, tuple[float, ...]]) -> pd.DataFrame:
    """Return the frame of ``rows`` (bar start in ns -> values), which are in order."""
    starts = np.fromiter(rows, dtype=np.int64, count=len(rows)).view("datetime64[ns]")
    index = pd.DatetimeIndex(starts, name="time").tz_localize(UTC)
    values = np.array(list(rows.values()), dtype=np.float64).reshape(len(rows), len(BAR_COLUMNS))
    return pd.DataFrame(values, index=index, columns=list(BAR_COLUMNS))


def bars_frame(bars: Iterable[Bar]) -> pd.DataFrame:
    """Return ``bars`` as the frame ``signals`` reads: sorted by start, the last of equal starts."""
    rows = {_ns(bar.start): _values(bar) for bar in bars}
    return _frame(dict(sorted(rows.items())))


class RollingBars:
    """The last ``maxlen`` bars of one instrument, by start, with their frame built on demand.

    A bar whose start is already held replaces the one held (so the history's
    last, unfinished bar gives way to the live one). :meth:`frame` is cached
    until the next append and shared: do not modify it.
    """

    __slots__ = ("_cache", "_rows", "instrument", "maxlen")

    def __init__(self, maxlen: int, instrument: str | None = None) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self.maxlen, self.instrument = maxlen, instrument
        self._rows: dict[int, tuple[float, ...]] = {}  # bar start in ns -> values, in order
        self._cache: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, bar: Bar) -> None:
        """Add ``bar``, or replace the bar held with the same start."""
        if self.instrument is None:
            self.instrument = bar.instrument
        elif bar.instrument != self.instrument:
            raise ValueError(f"RollingBars of {self.instrument} given a bar of {bar.instrument}")
        start, rows = _ns(bar.start), self._rows
        misplaced = bool(rows) and start not in rows and start < next(reversed(rows))
        rows[start] = _values(bar)  # a start already held keeps its place
        if misplaced:  # rare: an older bar after newer ones
            self._rows = rows = dict(sorted(rows.items()))
        while len(rows) > self.maxlen:
            del rows[next(iter(rows))]
        self._cache = None

    def frame(self) -> pd.DataFrame:
        """Return the bars held as the frame ``signals`` reads (see :func:`bars_frame`)."""
        if self._cache is None:
            self._cache = _frame(self._rows)
        return self._cache
