"""Historical bars under a minute: drawn inside the minutes, within IB's step-size limits."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ib_async import BarData, Stock

from tests.sim.conftest import ESZ6
from tests.sim.simulator import connect, running_sim, wait_for
from trader.brokers.ib.durations import duration_seconds
from trader.sim.catalogue import Catalogue
from trader.sim.history import (
    BAR_SECONDS,
    MAX_SECOND_BAR_DURATION,
    BarArrays,
    HistoryError,
    HistoryRequest,
    build_bars,
    check_keep_up_to_date,
    seconds_from_minutes,
)
from trader.sim.market import MarketGenerator

AAPL, ES = 265598, ESZ6
T0 = datetime(2026, 11, 20, 15, 0, 30, tzinfo=UTC)
MINUTE0 = int(T0.timestamp()) // 60 * 60

# open, high, low, close, volume, count: an ordinary minute, a flat one, one that opens at
# its high and closes at its low, one without trades and one with a fractional volume.
MINUTES = [
    (100.0, 100.37, 99.81, 100.12, 1234.0, 17),
    (100.12, 100.12, 100.12, 100.12, 40.0, 1),
    (100.4, 100.4, 99.5, 99.5, 600.0, 9),
    (99.5, 99.73, 99.42, 99.6, 0.0, 0),
    (99.6, 99.61, 99.3, 99.33, 12.75, 3),
]


def minute_arrays(rows: list[tuple[float, float, float, float, float, int]] = MINUTES) -> BarArrays:
    columns = list(zip(*rows, strict=True))
    return BarArrays(np.arange(len(rows), dtype=np.int64) * 60 + MINUTE0, *(np.array(c) for c in columns[:5]),
                     np.array(columns[5], dtype=np.int64))


def seconds(minutes: BarArrays, spans: list[int], seed: int = 3) -> BarArrays:
    return seconds_from_minutes(minutes, np.array(spans), seed=seed, conid=AAPL, tick=0.01, grid_offset=0.005)


def as_tuples(bars: BarArrays) -> list[tuple[float, ...]]:
    return list(zip(bars.start.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                    bars.close.tolist(), bars.volume.tolist(), bars.count.tolist(), strict=True))


def test_one_second_bars_add_back_up_to_each_minute() -> None:
    minutes = minute_arrays()
    spans = [60, 60, 60, 17, 1]  # the last two as the live market's open minute might be
    secs = seconds(minutes, spans)
    assert len(secs) == sum(spans)
    for i, (o, h, low, c, volume, count) in enumerate(MINUTES):
        start = MINUTE0 + 60 * i
        inside = secs.select((secs.start >= start) & (secs.start < start + 60))
        assert inside.start.tolist() == list(range(start, start + spans[i]))
        assert inside.open[0] == o and inside.close[-1] == c
        assert inside.high.max() == h and inside.low.min() == low
        assert np.all(inside.low <= np.minimum(inside.open, inside.close))
        assert np.all(inside.high >= np.maximum(inside.open, inside.close))
        assert np.all(inside.open[1:] == inside.close[:-1])  # one continuous path
        assert np.all(inside.volume >= 0) and np.all(inside.count >= 0)
        assert inside.count.sum() == count
        if volume == round(volume):
            assert np.all(inside.volume == np.round(inside.volume)) and inside.volume.sum() == volume
        else:
            assert math.isclose(inside.volume.sum(), volume)
        # Every price is the minute's own or on the grid the mids live on (half a cent here).
        prices = np.concatenate([inside.open, inside.high, inside.low, inside.close])
        own = np.isin(prices, [o, h, low, c])
        on_grid = np.isclose((prices - 0.005) / 0.01, np.round((prices - 0.005) / 0.01), rtol=0, atol=1e-6)
        assert np.all(own | on_grid)
    assert np.unique(secs.close[:60]).size > 5  # an ordinary minute does move inside


def test_one_second_bars_depend_only_on_their_minute_and_the_seed() -> None:
    minutes = minute_arrays()
    spans = [60] * len(MINUTES)
    first = seconds(minutes, spans)
    assert as_tuples(first) == as_tuples(seconds(minutes, spans))
    alone = seconds(minutes.select(np.array([2])), [60])
    assert as_tuples(alone) == as_tuples(first)[120:180]  # the same minute asked for on its own
    assert as_tuples(seconds(minutes, spans, seed=4)) != as_tuples(first)


def walked(catalogue: Catalogue, seconds_run: float, rate: float = 4.0) -> MarketGenerator:
    market = MarketGenerator(catalogue, 9, rate, T0)
    for i in range(1, int(seconds_run * rate) + 1):
        market.step(T0 + timedelta(seconds=i / rate))
    return market


def epoch(date: str) -> int:
    return int(datetime.strptime(date, "%Y%m%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize("what", ["TRADES", "BID"])
def test_five_second_bars_make_up_the_minute_bars_including_the_live_minute(catalogue: Catalogue,
                                                                            what: str) -> None:
    market = walked(catalogue, 200.3)
    state = market.state(ES)
    end = T0 + timedelta(seconds=200.3)  # 15:03:50.3: the live minute is open
    fives = build_bars(state, 9, HistoryRequest(end, duration_seconds("1800 S"), "5 secs", what))
    ones = build_bars(state, 9, HistoryRequest(end, duration_seconds("1800 S"), "1 min", what))
    assert len(fives) == 360
    starts = [epoch(str(row[0])) for row in fives]
    assert all(t % 5 == 0 for t in starts) and np.all(np.diff(starts) == 5)
    assert starts[-1] <= end.timestamp() < starts[-1] + 5  # the last bar holds the end; none lies after it
    by_minute: dict[int, list[tuple[object, ...]]] = defaultdict(list)
    for t, row in zip(starts, fives, strict=True):
        by_minute[t // 60 * 60].append(row)
    compared = 0
    for date, o, h, low, c, volume, _, count in ones:
        rows = by_minute[epoch(str(date))]
        if epoch(str(date)) == starts[-1] // 60 * 60:
            assert len(rows) == 11  # 15:03:00 .. 15:03:50
        elif len(rows) != 12:
            continue  # the window's first minute is cut
        assert rows[0][1] == o and rows[-1][4] == c
        assert max(r[2] for r in rows) == h and min(r[3] for r in rows) == low  # type: ignore[type-var]
        if what == "TRADES":
            assert sum(r[5] for r in rows) == volume and sum(r[7] for r in rows) == count  # type: ignore[misc]
        compared += 1
    assert compared >= 29


def test_second_bars_are_the_same_on_every_request_and_align_to_their_size(catalogue: Catalogue) -> None:
    market = walked(catalogue, 95)
    state = market.state(AAPL)
    end = T0 + timedelta(seconds=95)
    for size in ("1 secs", "5 secs", "10 secs", "15 secs", "30 secs"):
        request = HistoryRequest(end, 900 if size == "1 secs" else 1800, size, "MIDPOINT", format_date=2)
        rows = build_bars(state, 9, request)
        assert rows == build_bars(state, 9, request)
        assert len(rows) == request.duration_seconds // BAR_SECONDS[size]
        assert all(int(str(row[0])) % BAR_SECONDS[size] == 0 for row in rows)
    # A longer request extends a shorter one, and an earlier end cuts it.
    short = build_bars(state, 9, HistoryRequest(end, 600, "5 secs", "MIDPOINT"))
    longer = build_bars(state, 9, HistoryRequest(end, 3600, "5 secs", "MIDPOINT"))
    earlier = build_bars(state, 9, HistoryRequest(end - timedelta(minutes=5), 600, "5 secs", "MIDPOINT"))
    assert longer[-120:] == short
    assert earlier[-1][0] == "20261120 14:57:00 UTC" and earlier == longer[-180:-60]
    # The same holds for minute bars ending before the live market started.
    hours = build_bars(state, 9, HistoryRequest(end, duration_seconds("2 D"), "1 min", "TRADES"))
    day_before = build_bars(state, 9, HistoryRequest(end - timedelta(days=1), duration_seconds("1 D"), "1 min", "TRADES"))
    assert len(hours) == 2 * 1440 and day_before == hours[:1440]


@pytest.mark.parametrize("size", sorted(MAX_SECOND_BAR_DURATION, key=BAR_SECONDS.__getitem__))
def test_second_bars_follow_ib_step_sizes(catalogue: Catalogue, size: str) -> None:
    state = MarketGenerator(catalogue, 9, 4.0, T0).state(AAPL)
    limit = MAX_SECOND_BAR_DURATION[size]
    rows = build_bars(state, 9, HistoryRequest(T0, limit, size, "MIDPOINT"))
    assert len(rows) == limit // BAR_SECONDS[size]
    with pytest.raises(HistoryError, match="Time length exceed max"):
        build_bars(state, 9, HistoryRequest(T0, limit + 1, size, "MIDPOINT"))
    assert {"1 secs": 1800, "5 secs": 3600, "10 secs": 14400, "15 secs": 14400, "30 secs": 28800}[size] == limit


def test_only_bars_of_five_seconds_and_up_are_kept_up_to_date() -> None:
    with pytest.raises(HistoryError, match="keepUpToDate"):
        check_keep_up_to_date("1 secs")
    for size in ("5 secs", "30 secs", "1 min", "1 day"):
        check_keep_up_to_date(size)


# -- through the unmodified ib_async client -------------------------------------------------
def aggregate(bars: list[BarData]) -> tuple[float, float, float, float, float]:
    return (bars[0].open, max(b.high for b in bars), min(b.low for b in bars), bars[-1].close,
            sum(b.volume for b in bars))


def test_five_second_bars_through_ib_async() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            asked = server.clock()
            fives = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "5 secs", "TRADES", False)
            minutes = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "1 min", "TRADES", False)
            assert len(fives) == 360
            starts = [b.date.timestamp() for b in fives]
            assert all(t % 5 == 0 for t in starts) and np.all(np.diff(starts) == 5)
            assert starts[-1] <= server.clock().timestamp()
            compared = 0
            for minute in minutes:
                start = minute.date.timestamp()
                inside = [b for b in fives if start <= b.date.timestamp() < start + 60]
                if len(inside) == 12 and start + 60 <= asked.timestamp():  # whole and over before asking
                    assert aggregate(inside) == (minute.open, minute.high, minute.low, minute.close, minute.volume)
                    compared += 1
            assert compared >= 28
            ib.disconnect()

    asyncio.run(scenario())


def test_second_bars_repeat_and_refuse_what_ib_refuses() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            errors: list[tuple[int, str]] = []
            ib.errorEvent += lambda req_id, code, text, *_: errors.append((code, text))
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            end = (server.clock() - timedelta(minutes=2)).strftime("%Y%m%d-%H:%M:%S")
            first = await ib.reqHistoricalDataAsync(aapl, end, "600 S", "5 secs", "MIDPOINT", False)
            again = await ib.reqHistoricalDataAsync(aapl, end, "600 S", "5 secs", "MIDPOINT", False)
            assert len(first) == 120 and list(first) == list(again)  # (BarDataList compares by identity)
            recent = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "5 secs", "MIDPOINT", False)
            same_time = [b for b in recent if first[0].date <= b.date < first[-1].date]
            assert same_time == first[:-1]  # the last of first is cut at its end
            ones = await ib.reqHistoricalDataAsync(aapl, "", "60 S", "1 secs", "MIDPOINT", False)
            assert len(ones) == 60 and all(b.date.timestamp() % 1 == 0 for b in ones)
            assert not errors
            too_long = await ib.reqHistoricalDataAsync(aapl, "", "7200 S", "5 secs", "MIDPOINT", False)
            assert len(too_long) == 0
            assert errors == [(162, "Historical Market Data Service error message:Time length exceed max.")]
            too_long = await ib.reqHistoricalDataAsync(aapl, "", "1801 S", "1 secs", "MIDPOINT", False)
            assert len(too_long) == 0 and [code for code, _ in errors] == [162, 162]
            ib.disconnect()

    asyncio.run(scenario())


def test_five_second_bars_kept_up_to_date_and_one_second_bars_refused() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *_: errors.append(code)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            refused = await ib.reqHistoricalDataAsync(aapl, "", "60 S", "1 secs", "MIDPOINT", False,
                                                      keepUpToDate=True)
            assert len(refused) == 0 and errors == [162] and not server.sessions[1].bar_streams
            bars = await ib.reqHistoricalDataAsync(aapl, "", "300 S", "5 secs", "MIDPOINT", False,
                                                   keepUpToDate=True)
            assert len(bars) == 60
            last = bars[-1].date
            await wait_for(lambda: bars[-1].date > last, timeout=8, what="a new 5-second bar")
            assert bars[-1].date.timestamp() % 5 == 0
            assert bars[-1].date.timestamp() <= server.clock().timestamp()
            ib.cancelHistoricalData(bars)
            await wait_for(lambda: not server.sessions[1].bar_streams, what="stream cancelled")
            ib.disconnect()

    asyncio.run(scenario())
