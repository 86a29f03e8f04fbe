"""A replay from the market store answers reqHistoricalData from the store: its past, the bars replayed so far, no future."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ib_async import IB, BarData, BarDataList, Contract, Stock

from tests.sim.conftest import ManualClock
from tests.sim.simulator import connect, running_sim, sim_config, wait_for
from trader.data.arctic import ArcticStore
from trader.sim.catalogue import ReplayConfig
from trader.sim.server import TwsSimServer

DAY = datetime(2026, 3, 2, tzinfo=UTC)
FIRST = DAY + timedelta(hours=14)  # 09:00 US/Eastern (EST): half an hour before the open
START = DAY + timedelta(hours=15)  # the replay starts here: 10:00 ET
COUNT = 120  # stored minutes 14:00-15:59 UTC
NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)  # the server's clock: nowhere near the data's time
SPEED = 60  # a stored minute per second of the clock

Scenario = Callable[[TwsSimServer, IB, ManualClock], Awaitable[None]]


def stored_bars() -> pd.DataFrame:
    """``COUNT`` one-minute bars from ``FIRST``, each a different price, volume and trade count."""
    steps = np.arange(COUNT)
    opens = 180.0 + 0.05 * steps + 0.3 * np.sin(steps)
    closes = opens + 0.1 * np.cos(steps)
    frame = pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) + 0.07,
                          "low": np.minimum(opens, closes) - 0.04, "close": closes,
                          "volume": 100.0 + 10 * steps},
                         index=pd.DatetimeIndex([FIRST + timedelta(minutes=int(i)) for i in steps], name="time"))
    return frame.round(2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArcticStore]:
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    store.write_bars("AAPL.STK", "1m", stored_bars(), start=DAY, end=DAY + timedelta(days=1))
    yield store


def run(store: ArcticStore, scenario: Scenario, *, ticks: bool = False) -> None:
    """Run ``scenario`` against a tws-sim replaying AAPL.STK from ``store`` from ``START``, on a manual clock."""
    replay = ReplayConfig(store=["AAPL.STK"], store_uri=store.uri, start=START, end=DAY + timedelta(days=1),
                          speed=SPEED, ticks=ticks)
    config = sim_config().model_copy(update={"replay": replay})
    clock = ManualClock(NOW)

    async def main() -> None:
        async with running_sim(config, clock=clock) as server:
            ib = await connect(server, 1)
            try:
                await scenario(server, ib, clock)
            finally:
                ib.disconnect()

    asyncio.run(main())


async def history(ib: IB, size: str = "1 min", *, end: str = "", duration: str = "1 D", what: str = "TRADES",
                  rth: bool = False, format_date: int = 2, keep: bool = False) -> BarDataList:
    [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert isinstance(contract, Contract)
    return await ib.reqHistoricalDataAsync(contract, end, duration, size, what, rth, format_date, keep)


def as_frame(bars: list[BarData]) -> pd.DataFrame:
    """Return ``bars`` as a frame like the store's: UTC index, open, high, low, close, volume."""
    index = pd.DatetimeIndex([pd.Timestamp(b.date).tz_convert("UTC") for b in bars], name="time")
    return pd.DataFrame({"open": [b.open for b in bars], "high": [b.high for b in bars],
                         "low": [b.low for b in bars], "close": [b.close for b in bars],
                         "volume": [float(b.volume) for b in bars]}, index=index)


async def play(server: TwsSimServer, clock: ManualClock, seconds: float) -> datetime:
    """Move the clock by ``seconds``, wait for the market to step there; return the data time played."""
    replay = server.market.replay
    assert replay is not None
    await wait_for(lambda: replay.status()["anchor"] is not None, what="the replay to start on the clock")
    before = replay.played_until()
    clock.advance(seconds)
    await wait_for(lambda: replay.played_until() > before, what="the replay to play on")
    return datetime.fromtimestamp(replay.played_until() / 1e9, UTC)


def errors(ib: IB) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    ib.errorEvent += lambda req_id, code, text, contract: seen.append((code, text))
    return seen


def test_history_before_the_replay_starts_is_the_stored_bars(store: ArcticStore) -> None:
    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        bars = as_frame(await history(ib))
        expected = stored_bars().loc[:START - timedelta(minutes=1)]
        pd.testing.assert_frame_equal(bars, expected, check_freq=False)
        # an end after the replay's data time is capped there, as IB caps one in the future
        later = as_frame(await history(ib, end="20260302 17:00:00 UTC", duration="3600 S"))
        assert later.index[-1] == START - timedelta(minutes=1) and len(later) == 60
        rth = as_frame(await history(ib, rth=True, format_date=1))  # dates in US/Eastern text
        assert rth.index[0] == DAY + timedelta(hours=14, minutes=30) and len(rth) == 30

    run(store, scenario)


def test_history_during_the_replay_holds_the_replayed_bars_and_nothing_after(store: ArcticStore) -> None:
    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        played = await play(server, clock, 10.5)  # ten and a half stored minutes
        assert START + timedelta(minutes=10) <= played < START + timedelta(minutes=11)
        bars = as_frame(await history(ib))
        whole = stored_bars()
        expected = whole.loc[:played - timedelta(minutes=1)]  # the bars played whole, not the one in progress
        pd.testing.assert_frame_equal(bars, expected, check_freq=False)
        assert bars.index[-1] == START + timedelta(minutes=9)
        fives = as_frame(await history(ib, "5 mins"))
        stored = store.read_bars("AAPL.STK", "5m", FIRST, START + timedelta(minutes=10))
        pd.testing.assert_frame_equal(fives, stored[["open", "high", "low", "close", "volume"]], check_freq=False)

    run(store, scenario)


def test_a_kept_up_to_date_request_gets_every_replayed_bar_and_no_future_one(store: ArcticStore) -> None:
    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        bars = await history(ib, keep=True)
        assert as_frame(bars).index[-1] == START - timedelta(minutes=1)
        played = await play(server, clock, 6.2)  # six stored minutes in one clock step: six new bars at once
        await wait_for(lambda: as_frame(bars).index[-1] == played.replace(second=0) - timedelta(minutes=1),
                       what="the replayed bars")
        got = as_frame(bars)
        expected = stored_bars().loc[:played - timedelta(minutes=1)]
        pd.testing.assert_frame_equal(got, expected, check_freq=False)

    run(store, scenario)


def test_a_finer_size_than_stored_and_an_empty_range_are_ib_errors(store: ArcticStore) -> None:
    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        seen = errors(ib)
        assert list(await history(ib, "30 secs", duration="1800 S")) == []
        assert list(await history(ib, end="20260301 12:00:00 UTC")) == []  # a day before anything stored
        assert [code for code, _ in seen] == [162, 162], seen
        assert "no 30 secs bars for AAPL.STK" in seen[0][1] and "holds 1 min bars" in seen[0][1]
        assert "HMDS query returned no data: AAPL@SMART Trades" in seen[1][1]

    run(store, scenario)


def test_other_instruments_keep_the_synthetic_history(store: ArcticStore) -> None:
    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        [msft] = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
        assert isinstance(msft, Contract)
        bars = await ib.reqHistoricalDataAsync(msft, "", "3600 S", "1 min", "TRADES", False, 2)
        assert len(bars) == 60 and bars[-1].date == NOW - timedelta(minutes=1)  # on the server's clock

    run(store, scenario)


def test_a_tick_replay_answers_history_from_the_recorded_ticks(store: ArcticStore) -> None:
    # one trade a second from 14:58 (two minutes before the replay's start) to 15:01: the volume grows by 10 each
    times = pd.DatetimeIndex([START - timedelta(minutes=2) + timedelta(seconds=i) for i in range(240)], name="time")
    last = 180.0 + 0.01 * np.arange(240)
    ticks = pd.DataFrame({"bid": last - 0.01, "ask": last + 0.01, "last": last, "last_size": 10.0,
                          "volume": 1000.0 + 10 * np.arange(240)}, index=times)
    store.append_ticks("AAPL.STK", ticks)

    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        # the ticks before the start, and the one at the start: the replay shows it as its first quote
        before = await history(ib, "1 min", duration="3600 S")
        assert [b.date for b in before] == [START + timedelta(minutes=m) for m in (-2, -1, 0)]
        # the first recorded row is the ticker as found (no trade); every later one traded 10
        assert [b.volume for b in before] == [590, 600, 10] and before[-1].close == round(last[120], 2)
        mids = await history(ib, "1 min", duration="3600 S", what="MIDPOINT")
        assert [b.open for b in mids] == [round(last[0], 2), round(last[60], 2), round(last[120], 2)]
        played = await play(server, clock, 1.5)  # ninety seconds of ticks
        after = await history(ib, "1 min", duration="3600 S")
        newest = int((played - times[0]).total_seconds())  # the last tick played: at or before the data time
        assert after[-1].date == played.replace(second=0)
        assert after[-1].close == max(b.high for b in after) == round(last[newest], 2)  # and none after it

    run(store, scenario, ticks=True)


def test_a_tick_replays_volume_of_a_minute_does_not_depend_on_where_the_request_starts(store: ArcticStore) -> None:
    # one trade a second from 14:50: its first tick is the ticker as found, every later one traded 10
    times = pd.DatetimeIndex([START - timedelta(minutes=10) + timedelta(seconds=i) for i in range(720)], name="time")
    last = 180.0 + 0.01 * np.arange(720)
    ticks = pd.DataFrame({"bid": last - 0.01, "ask": last + 0.01, "last": last, "last_size": 10.0,
                          "volume": 1000.0 + 10 * np.arange(720)}, index=times)
    store.append_ticks("AAPL.STK", ticks)

    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        minute = START - timedelta(minutes=1)  # 14:59, the first minute of a "60 S" request
        volumes = {}
        for duration in ("60 S", "120 S", "3600 S"):
            bars = {b.date: b for b in await history(ib, "1 min", duration=duration)}
            volumes[duration] = (bars[minute].volume, bars[minute].barCount)
        assert volumes == {d: (600, 60) for d in volumes}, volumes
        seconds = {b.date: b.volume for b in await history(ib, "1 secs", duration="60 S")}
        assert seconds[minute] == 10  # the range's first tick traded: the one before it says so

    run(store, scenario, ticks=True)
