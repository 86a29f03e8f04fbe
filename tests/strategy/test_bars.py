"""Bars: bar sizes, the tick-to-bar operator in virtual time (and once on asyncio), frames."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pydantic
import pytest
from reactivex import abc
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from trader.domain import Bar, Tick
from trader.strategy import StrategyConfig
from trader.strategy.bars import (
    BAR_SIZES,
    MAX_SECONDS_DURATION,
    BarAggregator,
    RollingBars,
    aggregate_bars,
    bars_frame,
    ib_bar_size,
    ib_duration,
    parse_bar_size,
    short_bar_size,
)

on_next, on_completed, on_error = (
    ReactiveTest.on_next,
    ReactiveTest.on_completed,
    ReactiveTest.on_error,
)


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def tick(t: float, last: float | None = None, size: float | None = None, **kw: Any) -> Tick:
    return Tick(kw.pop("instrument", "AAPL"), at(t), last=last, last_size=size, **kw)


def bar(
    start: float, o: float, h: float, lo: float, c: float, v: float, n: int, size: str = "5s"
) -> Bar:
    return Bar("AAPL", at(start), size, o, h, lo, c, v, n)


class RecordingScheduler(TestScheduler):
    """A TestScheduler that keeps what it was asked to schedule, to see what was cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: list[tuple[float, abc.DisposableBase]] = []

    def schedule_absolute(self, duetime: Any, action: Any, state: Any = None) -> abc.DisposableBase:
        disposable = super().schedule_absolute(duetime, action, state)
        self.scheduled.append((self.to_seconds(duetime), disposable))
        return disposable

    def cancelled(self, duetime: float) -> list[bool]:
        return [d.is_disposed for t, d in self.scheduled if t == duetime]  # type: ignore[attr-defined]


def run(
    *messages: Any,
    seconds: int = 5,
    grace: float = 0.25,
    disposed: float = 1000,
    explicit: bool = True,
) -> tuple[list[Any], BarAggregator, RecordingScheduler]:
    """Feed ``messages`` (virtual time = tick time) through the operator; return what came out."""
    scheduler = RecordingScheduler()
    source = scheduler.create_hot_observable(*messages)
    agg = aggregate_bars("AAPL", seconds, scheduler=scheduler if explicit else None, grace=grace)
    observer = scheduler.start(lambda: source.pipe(agg), disposed=disposed)
    return observer.messages, agg, scheduler


# -- aggregation ---------------------------------------------------------------------


def test_bar_closes_by_timer_without_further_ticks() -> None:
    out, agg, _ = run(
        on_next(201, tick(201, 100.0, 10)),
        on_next(202, tick(202, 101.0, 5)),
        on_next(203.5, tick(203.5, 99.0, 1)),
    )
    assert out == [on_next(205.25, bar(200, 100, 101, 99, 99, 16, 3))]
    assert agg.stats == {"ticks": 3, "bars": 1, "skipped": 0, "late": 0}


def test_bar_closes_at_the_first_tick_of_a_later_bucket() -> None:
    out, _, scheduler = run(
        on_next(201, tick(201, 100.0, 1)),
        on_next(207, tick(207, 102.0, 2)),
        grace=10,
    )
    assert out == [
        on_next(207, bar(200, 100, 100, 100, 100, 1, 1)),
        on_next(220, bar(205, 102, 102, 102, 102, 2, 1)),
    ]
    assert scheduler.cancelled(215) == [True]  # the first bar's timer


def test_ohlcv_and_count_are_exact() -> None:
    out, _, _ = run(
        on_next(205.0, tick(205.0, 10.0, 3)),  # a bar includes its start
        on_next(205.5, tick(205.5, 12.5, 2)),
        on_next(206.0, tick(206.0, 9.75, None)),  # a trade without a size adds no volume
        on_next(207.0, tick(207.0, bid=11.0, ask=11.5)),  # a quote: its mid, no volume
        on_next(209.999, tick(209.999, 11.0, 4)),
        on_next(210.0, tick(210.0, 50.0, 1)),  # ... but not its end
    )
    first, second = (message.value.value for message in out)
    assert first == bar(205, 10.0, 12.5, 9.75, 11.0, 9.0, 5)
    assert second == bar(210, 50, 50, 50, 50, 1, 1)


def test_bid_ask_mid_when_there_is_no_last() -> None:
    out, _, _ = run(
        on_next(201, tick(201, bid=99.0, ask=101.0, bid_size=3, ask_size=4)),
        on_next(202, tick(202, bid=100.0, ask=104.0)),
    )
    assert out == [on_next(205.25, bar(200, 100, 102, 100, 102, 0, 2))]


def test_buckets_are_aligned_to_the_epoch() -> None:
    t0 = 1_700_000_123.0  # 1_700_000_100 is a multiple of 300
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(t0, tick(t0, 1.0)), on_next(t0 + 100, tick(t0 + 100, 2.0))
    )
    agg = aggregate_bars("AAPL", 300, scheduler=scheduler, grace=1)
    observer = scheduler.start(
        lambda: source.pipe(agg), created=t0 - 2, subscribed=t0 - 1, disposed=t0 + 1000
    )
    expected = Bar("AAPL", at(1_700_000_100), "5m", 1, 2, 1, 2, 0, 2)
    assert observer.messages == [on_next(1_700_000_401, expected)]
    assert expected.start.minute % 5 == 0 and expected.start.second == 0


def test_a_late_tick_is_dropped_and_no_bar_is_emitted_twice() -> None:
    out, agg, _ = run(
        on_next(201, tick(201, 100.0, 1)),
        on_next(205.5, tick(204.9, 500.0, 1)),  # its bar went out at 205.25
        on_next(207, tick(207, 101.0, 1)),
        on_next(207.5, tick(203, 1.0, 1)),  # for a bucket before the open one
    )
    assert out == [
        on_next(205.25, bar(200, 100, 100, 100, 100, 1, 1)),
        on_next(210.5, bar(205, 101, 101, 101, 101, 1, 1)),  # the first late tick doubled the grace
    ]
    assert agg.stats["late"] == 2 and agg.stats["skipped"] == 0


def test_late_ticks_widen_the_grace_up_to_its_cap() -> None:
    # Each round opens a bar, then a tick of that bar arrives just after its timer closed it.
    graces = [min(0.25 * 2**k, 5.0) for k in range(8)]  # 0.25, 0.5, ... 5, 5
    events = []
    for k, grace in enumerate(graces):
        start = 200 + 10 * k
        events += [on_next(start + 1, tick(start + 1, 100.0, 1)),
                   on_next(start + 5 + grace + 0.01, tick(start + 4.9, 100.0, 1))]
    out, agg, _ = run(*events)
    assert [m.time for m in out] == [200 + 10 * k + 5 + grace for k, grace in enumerate(graces)]
    assert agg.stats["late"] == len(graces)


@pytest.mark.parametrize(
    "item",
    [
        tick(202),  # no price at all
        tick(202, math.nan, 1),
        tick(202, math.inf, 1),
        tick(202, -5.0, 1),
        tick(202, 0.0, 1),
        tick(202, bid=99.0),  # one side only
        tick(202, bid=-1.0, ask=101.0),  # IB's empty book side
        tick(202, bid=math.nan, ask=101.0),
        tick(202, 100.0, 1, instrument="MSFT"),
        "not a tick",
        None,
        {"instrument": "AAPL", "last": 100.0},
    ],
    ids=repr,
)
def test_bad_data_is_skipped_without_ending_the_stream(item: object) -> None:
    out, agg, _ = run(
        on_next(201, tick(201, 100.0, 1)),
        on_next(202, item),
        on_next(203, tick(203, 101.0, 1)),
        on_next(206, tick(206, 102.0, 1)),
    )
    assert out == [
        on_next(205.25, bar(200, 100, 101, 100, 101, 2, 2)),
        on_next(210.25, bar(205, 102, 102, 102, 102, 1, 1)),
    ]
    assert agg.stats["skipped"] == 1 and agg.stats["ticks"] == 3


def test_drops_warn_once_then_are_only_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trader.strategy.bars")
    run(*(on_next(201 + i, tick(201 + i)) for i in range(3)))
    levels = [r.levelno for r in caplog.records if "dropped" in r.getMessage()]
    assert levels == [logging.WARNING]


def test_completion_flushes_the_open_bar() -> None:
    out, _, scheduler = run(on_next(201, tick(201, 100.0, 1)), on_completed(203))
    assert out == [on_next(203, bar(200, 100, 100, 100, 100, 1, 1)), on_completed(203)]
    assert scheduler.cancelled(205.25) == [True]


def test_errors_pass_through_and_cancel_the_timer() -> None:
    boom = RuntimeError("feed lost")
    out, _, scheduler = run(on_next(201, tick(201, 100.0, 1)), on_error(203, boom))
    assert out == [on_error(203, boom)]
    assert scheduler.cancelled(205.25) == [True]


def test_dispose_cancels_the_timer() -> None:
    out, _, scheduler = run(on_next(201, tick(201, 100.0, 1)), disposed=203)
    assert out == []
    assert scheduler.cancelled(205.25) == [True]


def test_the_timer_runs_on_the_subscribe_scheduler_by_default() -> None:
    out, _, _ = run(on_next(201, tick(201, 100.0, 1)), explicit=False)
    assert out == [on_next(205.25, bar(200, 100, 100, 100, 100, 1, 1))]


def test_an_empty_interval_makes_no_bar() -> None:
    out, _, _ = run(on_next(201, tick(201, 1.0)), on_next(231, tick(231, 2.0)))
    assert [m.value.value.start for m in out] == [at(200), at(230)]


def test_aggregate_bars_rejects_a_bad_size_or_grace() -> None:
    with pytest.raises(ValueError, match="bar sizes"):
        aggregate_bars("AAPL", 7)
    with pytest.raises(ValueError, match="grace"):
        aggregate_bars("AAPL", 5, grace=-1)


def test_bars_close_on_the_wall_clock_with_the_asyncio_scheduler() -> None:
    async def main() -> list[tuple[str, Bar, int]]:
        loop = asyncio.get_running_loop()
        ticks: Subject[Tick] = Subject()
        got: list[tuple[str, Bar, int]] = []
        explicit = aggregate_bars("AAPL", 1, scheduler=AsyncIOScheduler(loop), grace=0.05)
        default = aggregate_bars("AAPL", 1, grace=0.05)  # picks the running loop
        for name, agg in (("explicit", explicit), ("default", default)):
            ticks.pipe(agg).subscribe(
                lambda b, name=name: got.append((name, b, threading.get_ident()))
            )
        now = datetime.now(UTC)
        if now.microsecond > 500_000:  # keep the three ticks in one second
            await asyncio.sleep(1.02 - now.microsecond / 1e6)
        for price in (10.0, 11.0, 9.0):
            ticks.on_next(Tick("AAPL", datetime.now(UTC), last=price, last_size=1))
        deadline = loop.time() + 3
        while len(got) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert len(got) == 2, got
        assert datetime.now(UTC) >= got[0][1].start + timedelta(seconds=1)
        return got

    got = asyncio.run(main())
    assert sorted(name for name, _, _ in got) == ["default", "explicit"]
    for _, closed, thread in got:
        assert (closed.open, closed.high, closed.low, closed.close) == (10, 11, 9, 9)
        assert (closed.volume, closed.count, closed.size) == (3, 3, "1s")
        assert thread == threading.get_ident()  # on the loop, not a timer thread


# -- sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1), ("5s", 5), ("30s", 30), ("1m", 60), ("20m", 1200), ("30m", 1800),
        ("1h", 3600), ("8h", 28800), ("1d", 86400), (" 15S ", 15), ("1 secs", 1),
        ("5 secs", 5), ("1 min", 60), ("2 mins", 120), ("1 hour", 3600),
        ("4 hours", 14400), ("1 day", 86400), ("3min", 180),
    ],
)  # fmt: skip
def test_parse_bar_size(text: str, seconds: int) -> None:
    assert parse_bar_size(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "5", "7s", "60s", "45m", "5h", "2d", "1w", "1 month", "-5s", "1.5m", "5 sex"]
)
def test_parse_bar_size_rejects_what_ib_does_not_offer(text: str) -> None:
    with pytest.raises(ValueError, match=r"not one of IB's bar sizes: 1s, 5s, .*, 8h, 1d"):
        parse_bar_size(text)


def test_strategy_config_reports_a_bad_bar_size() -> None:
    assert StrategyConfig(bar_size="5 mins").bar_size == "5 mins"
    with pytest.raises(pydantic.ValidationError, match="15m"):
        StrategyConfig(bar_size="7m")


@pytest.mark.parametrize(
    ("seconds", "ib", "short"),
    [
        (1, "1 secs", "1s"), (5, "5 secs", "5s"), (60, "1 min", "1m"), (120, "2 mins", "2m"),
        (3600, "1 hour", "1h"), (7200, "2 hours", "2h"), (86400, "1 day", "1d"),
    ],
)  # fmt: skip
def test_ib_bar_size_and_short_bar_size(seconds: int, ib: str, short: str) -> None:
    assert (ib_bar_size(seconds), short_bar_size(seconds)) == (ib, short)


def test_every_size_round_trips_and_others_are_refused() -> None:
    assert len(BAR_SIZES) == 19
    for name in BAR_SIZES:
        seconds = parse_bar_size(name)
        assert parse_bar_size(ib_bar_size(seconds)) == seconds
        assert short_bar_size(seconds) == name
    with pytest.raises(ValueError, match="bar sizes"):
        ib_bar_size(7)


@pytest.mark.parametrize(
    ("bars", "seconds", "duration"),
    [
        (100, 5, "600 S"), (100, 60, "7200 S"), (1200, 60, "86400 S"), (1201, 60, "2 D"),
        (720, 3600, "36 D"), (100, 86400, "168 D"), (217, 86400, "365 D"),
        (218, 86400, "2 Y"), (1000, 86400, "5 Y"),
    ],
)  # fmt: skip
def test_ib_duration(bars: int, seconds: int, duration: str) -> None:
    assert ib_duration(bars, seconds) == duration


def test_ib_duration_always_covers_the_bars_up_to_ibs_limit() -> None:
    unit = {"S": 1, "D": 86400, "Y": 365 * 86400}
    for name in BAR_SIZES:
        seconds = parse_bar_size(name)
        for bars in (1, 50, 999, 5000):
            count, letter = ib_duration(bars, seconds).split()
            wanted = bars * seconds * 1.2
            assert int(count) * unit[letter] >= min(wanted, MAX_SECONDS_DURATION.get(seconds, wanted))
    with pytest.raises(ValueError, match="at least 1"):
        ib_duration(0, 60)


# -- frames ----------------------------------------------------------------------------


def test_bars_frame_dtypes_index_order_and_duplicates() -> None:
    frame = bars_frame(
        [bar(10, 3, 3, 3, 3, 3, 1), bar(0, 1, 1, 1, 1, 1, 1), bar(10, 4, 4, 4, 4, 4, 1)]
    )
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == "float64" for dtype in frame.dtypes)
    assert str(frame.index.dtype) == "datetime64[ns, UTC]" and frame.index.name == "time"
    assert list(frame.index) == [pd.Timestamp(0, tz="UTC"), pd.Timestamp(10e9, tz="UTC")]
    assert list(frame["close"]) == [1.0, 4.0]  # the last of equal starts wins


def test_bars_frame_of_nothing_is_empty_but_typed() -> None:
    frame = bars_frame([])
    assert frame.empty and list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert all(dtype == "float64" for dtype in frame.dtypes)


def test_rolling_bars_keeps_the_last_n_and_replaces_equal_starts() -> None:
    rolling = RollingBars(3)
    for start in (0, 5, 10, 15):
        rolling.append(bar(start, start, start, start, start, 1, 1))
    assert len(rolling) == 3
    assert list(rolling.frame()["close"]) == [5, 10, 15]
    rolling.append(bar(15, 1, 2, 0.5, 1.5, 7, 4))  # the unfinished bar, finished
    rolling.append(bar(5, 50, 50, 50, 50, 1, 1))  # an older bar held: replaced in place
    frame = rolling.frame()
    assert len(rolling) == 3 and list(frame["close"]) == [50, 10, 1.5]
    assert frame.loc[at(15), "volume"] == 7 and frame.index.is_monotonic_increasing


def test_rolling_bars_orders_older_bars_and_drops_those_past_the_window() -> None:
    rolling = RollingBars(3)
    for start in (5, 15, 20):
        rolling.append(bar(start, start, start, start, start, 1, 1))
    rolling.append(bar(10, 10, 10, 10, 10, 1, 1))
    assert list(rolling.frame()["close"]) == [10, 15, 20]
    rolling.append(bar(0, 0, 0, 0, 0, 1, 1))  # older than the whole window
    assert list(rolling.frame()["close"]) == [10, 15, 20]


def test_rolling_bars_frame_is_cached_until_the_next_append() -> None:
    rolling = RollingBars(10)
    rolling.append(bar(0, 1, 1, 1, 1, 1, 1))
    first = rolling.frame()
    assert rolling.frame() is first
    rolling.append(bar(5, 2, 2, 2, 2, 1, 1))
    assert rolling.frame() is not first and len(rolling.frame()) == 2 and len(first) == 1


def test_rolling_bars_is_for_one_instrument() -> None:
    rolling = RollingBars(5)
    rolling.append(bar(0, 1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="MSFT"):
        rolling.append(Bar("MSFT", at(5), "5s", 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="maxlen"):
        RollingBars(0)


def test_ib_duration_is_capped_at_ibs_limit_for_second_bars() -> None:
    assert ib_duration(1000, 5) == "3600 S"  # 6000 S wanted; IB serves at most an hour of 5-second bars
    assert ib_duration(100, 1) == "120 S"
    assert ib_duration(10_000, 30) == "28800 S"
