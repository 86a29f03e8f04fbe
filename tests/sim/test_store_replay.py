"""Replay from the market store: stored bars and recorded ticks of several keys drive tws-sim's instruments."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ib_async import Stock

from services.tws_sim import TwsSimService
from tests.conftest import REPO, StackEnv, wait_for_port
from tests.sim.conftest import ManualClock
from tests.sim.simulator import connect, wait_for
from trader.config import load_settings
from trader.data.arctic import ArcticStore
from trader.errors import ConfigError
from trader.sim.catalogue import Catalogue, ReplayConfig
from trader.sim.market import MarketGenerator
from trader.sim.replay import ReplaySource
from trader.sim.store_replay import StoreReplayData

AAPL, MSFT = 265598, 272093
DAY = datetime(2026, 3, 2, tzinfo=UTC)
T0 = DAY + timedelta(hours=14, minutes=30)


def bars(first: datetime, count: int, price: float, step: float, volume: int) -> pd.DataFrame:
    """``count`` one-minute bars from ``first``: each opens at the last close and moves by ``step``."""
    opens = price + step * np.arange(count)
    closes = opens + step
    frame = pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) + 0.05,
                          "low": np.minimum(opens, closes) - 0.05, "close": closes,
                          "volume": np.full(count, float(volume))},
                         index=pd.DatetimeIndex([first + timedelta(minutes=i) for i in range(count)], name="time"))
    return frame.round(2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArcticStore]:
    yield ArcticStore(f"lmdb://{tmp_path / 'arctic'}")


def write(store: ArcticStore, key: str, frame: pd.DataFrame) -> None:
    day = frame.index[0].floor("D")
    store.write_bars(key, "1m", frame, start=day, end=frame.index[-1].floor("D") + pd.Timedelta(days=1))


def test_several_keys_are_merged_in_time_order_a_day_at_a_time(store: ArcticStore, catalogue: Catalogue) -> None:
    aapl = pd.concat([bars(T0, 30, 180.0, 0.10, 400), bars(T0 + timedelta(days=1), 10, 190.0, -0.1, 400)])
    msft = bars(T0 + timedelta(minutes=25), 20, 420.0, 0.2, 200)  # overlaps AAPL's last five minutes that day
    write(store, "AAPL.STK", aapl)
    write(store, "MSFT.STK", msft)
    data = StoreReplayData(store, ["AAPL.STK", "MSFT.STK"], start=DAY, end=DAY + timedelta(days=2))
    frames = list(data.frames())
    assert len(frames) == 2  # one chunk per day
    merged = pd.concat(frames)
    assert merged["time"].is_monotonic_increasing and len(merged) == 60
    assert list(merged.loc[merged.symbol == "MSFT.STK", "close"]) == list(msft["close"])
    assert set(merged.loc[merged["time"] >= DAY + timedelta(days=1), "symbol"]) == {"AAPL.STK"}
    replay = ReplaySource(data, catalogue, ReplayConfig(store=["AAPL.STK", "MSFT.STK"], start=DAY, speed=60))
    assert replay.conids == {AAPL, MSFT} and replay.rows == 4 * 60  # four prints a bar


def test_a_recorded_day_replays_its_trades_not_every_quote(store: ArcticStore, catalogue: Catalogue) -> None:
    # The ticker as the bus carried it: every row repeats the last trade; the volume grows on a trade only.
    rows = [  # bid, ask, last, last_size, volume
        (180.00, 180.02, 180.01, 100, 5000),  # the ticker when recording began: a state
        (180.01, 180.03, 180.01, 100, 5000),  # the quote moved: no trade
        (180.01, 180.03, 180.03, 200, 5200),  # a trade of 200
        (180.02, 180.04, 180.03, 200, 5200),  # the quote moved again
        (180.02, 180.04, 180.03, 300, 5500),  # a trade of 300 at the same price
    ]
    index = pd.DatetimeIndex([T0 + timedelta(seconds=i) for i in range(len(rows))], name="time")
    ticks = pd.DataFrame(rows, columns=["bid", "ask", "last", "last_size", "volume"], index=index)
    store.append_ticks("AAPL.STK", ticks.assign(bid_size=3.0, ask_size=4.0))
    data = StoreReplayData(store, ["AAPL.STK"], start=DAY, end=DAY + timedelta(days=1), ticks=True)
    [frame] = list(data.frames())
    assert frame["last_size"].isna().tolist() == [True, True, False, True, False]
    clock = ManualClock(T0)
    replay = ReplaySource(data, catalogue, ReplayConfig(store=["AAPL.STK"], ticks=True, start=DAY, speed=1))
    market = MarketGenerator(catalogue, seed=1, tick_rate=4.0, start=clock())
    market.drive(replay)
    state = market.state(AAPL)
    assert (state.bid, state.ask) == (Decimal("180.00"), Decimal("180.02"))  # the first quote
    for _ in range(6):
        market.step(clock())
        clock.advance(1)
    assert replay.done and state.volume == 500  # the two trades, not five rows of 100..300
    assert (state.bid, state.ask, state.last) == (Decimal("180.02"), Decimal("180.04"), Decimal("180.03"))
    assert (state.bid_size, state.ask_size) == (3, 4)


def test_trades_are_told_across_days_and_keys(store: ArcticStore) -> None:
    def ticks(first: datetime, rows: list[tuple[float, float, float]]) -> pd.DataFrame:  # last, last_size, volume
        index = pd.DatetimeIndex([first + timedelta(seconds=i) for i in range(len(rows))], name="time")
        return pd.DataFrame(rows, columns=["last", "last_size", "volume"], index=index).assign(bid=1.0, ask=2.0)

    store.append_ticks("AAPL.STK", pd.concat([
        ticks(T0, [(1.5, 10, 900), (1.5, 10, 900), (1.6, 20, 920)]),
        ticks(T0 + timedelta(days=1), [(1.6, 20, 920), (1.7, 5, 5), (1.7, 5, 5)]),  # the day's volume starts again
    ]))
    store.append_ticks("MSFT.STK", ticks(T0, [(9.0, 1, np.nan), (9.0, 1, np.nan), (9.1, 1, np.nan),
                                               (9.1, 2, np.nan)]))  # no volume: a change of last or size
    data = StoreReplayData(store, ["AAPL.STK", "MSFT.STK"], start=DAY, end=DAY + timedelta(days=2), ticks=True)
    rows = pd.concat(list(data.frames()))
    traded = {key: rows.loc[rows.symbol == key, "last_size"].notna().tolist() for key in ("AAPL.STK", "MSFT.STK")}
    assert traded == {"AAPL.STK": [False, False, True, False, True, False], "MSFT.STK": [False, False, True, True]}


def test_a_key_not_in_the_store_is_refused_naming_it(store: ArcticStore) -> None:
    write(store, "AAPL.STK", bars(T0, 5, 180.0, 0.1, 100))
    with pytest.raises(ConfigError, match=r"no 1m bars stored for NOPE\.STK"):
        StoreReplayData(store, ["AAPL.STK", "NOPE.STK"], start=DAY)
    with pytest.raises(ConfigError, match=r"no ticks recorded for AAPL\.STK"):
        StoreReplayData(store, ["AAPL.STK"], start=DAY, ticks=True)
    with pytest.raises(ValueError, match="needs a start"):
        ReplayConfig(store=["AAPL.STK"])


def test_tws_sim_options_name_the_store_replay() -> None:
    parser = argparse.ArgumentParser()
    TwsSimService.add_arguments(parser)
    settings = load_settings(env={})

    def replay(*argv: str) -> ReplayConfig:
        config = TwsSimService.from_args(settings, parser.parse_args(["--port", "0", *argv])).sim_config
        assert config is not None and config.replay is not None
        return config.replay

    bars_ = replay("--replay", "store:AAPL.STK,MSFT.STK", "--bar-size", "5 mins", "--start", "2026-03-02",
                   "--speed", "60", "--store", "lmdb:///tmp/x")
    assert (bars_.store, bars_.bar_seconds, bars_.ticks, bars_.speed) == (["AAPL.STK", "MSFT.STK"], 300, False, 60)
    assert bars_.file is None and bars_.store_uri == "lmdb:///tmp/x" and bars_.start == datetime(2026, 3, 2)
    ticks = replay("--replay", "store-ticks:AAPL.STK", "--start", "2026-03-02T14:30", "--end", "2026-03-02T21:00")
    assert ticks.ticks and ticks.bar_seconds is None and ticks.end == datetime(2026, 3, 2, 21)
    with pytest.raises(SystemExit):  # one spelling of a tick replay: store-ticks:KEYS, no --ticks flag
        parser.parse_args(["--port", "0", "--replay", "store:AAPL.STK", "--ticks", "--start", "2026-03-02"])
    with pytest.raises(ConfigError, match="needs a start"):
        replay("--replay", "store:AAPL.STK")
    with pytest.raises(ConfigError, match="need a replay file or store keys"):
        replay("--bar-size", "1m")


def test_tws_sim_exits_with_the_config_code_on_a_missing_key(stack_env: StackEnv, store: ArcticStore) -> None:
    write(store, "AAPL.STK", bars(T0, 5, 180.0, 0.1, 100))
    result = subprocess.run([sys.executable, "-m", "services.tws_sim", "--port", "0", "--replay",
                             "store:AAPL.STK,NOPE.STK", "--start", "2026-03-02", "--store", store.uri],
                            cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert "no 1m bars stored for NOPE.STK" in result.stderr


@pytest.mark.slow
def test_ib_async_sees_the_stored_bars_replayed(stack_env: StackEnv, store: ArcticStore) -> None:
    aapl, msft = bars(T0, 20, 180.0, 0.10, 400), bars(T0, 20, 420.0, -0.20, 200)
    write(store, "AAPL.STK", aapl)
    write(store, "MSFT.STK", msft)
    prices = {k: {round(float(p), 2) for p in f[["open", "high", "low", "close"]].to_numpy().ravel()}
              for k, f in (("AAPL", aapl), ("MSFT", msft))}
    port = stack_env.ib_port
    sim = subprocess.Popen([sys.executable, "-m", "services.tws_sim", "--port", str(port), "--tick-rate", "20",
                            "--replay", "store:AAPL.STK,MSFT.STK", "--bar-size", "1m", "--start", "2026-03-02",
                            "--end", "2026-03-03", "--speed", "120", "--store", store.uri, "--no-pacing"],
                           cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def scenario() -> None:
        ib = await connect(port, 1, timeout=10)
        tickers = {}
        seen: dict[str, set[float]] = {"AAPL": set(), "MSFT": set()}
        for symbol in ("AAPL", "MSFT"):
            [contract] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
            tickers[symbol] = ticker = ib.reqMktData(contract)
            ticker.updateEvent += lambda t, s=symbol: seen[s].add(t.last)
        await wait_for(lambda: tickers["AAPL"].last == float(aapl["close"].iloc[-1])
                       and tickers["MSFT"].last == float(msft["close"].iloc[-1]), timeout=30,
                       what="the last replayed closes")
        await wait_for(lambda: tickers["AAPL"].volume == aapl["volume"].sum()
                       and tickers["MSFT"].volume == msft["volume"].sum(), timeout=5, what="the replayed volumes")
        for symbol, played in seen.items():
            real = {round(p, 2) for p in played if not math.isnan(p)}
            assert real <= prices[symbol] and len(real) >= 5, (symbol, sorted(real - prices[symbol]))
        # the replay is over: its history is the stored bars, the last one included, not tws-sim's synthetic ones
        deadline = asyncio.get_running_loop().time() + 10  # the replay is done a step after its last print
        while True:
            history = await ib.reqHistoricalDataAsync(tickers["AAPL"].contract, "", "1 D", "1 min", "TRADES", False, 2)
            if len(history) >= len(aapl) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert [b.date for b in history] == list(aapl.index.to_pydatetime())
        assert [b.close for b in history] == list(aapl["close"]) and [b.volume for b in history] == list(aapl["volume"])
        ib.disconnect()

    try:
        wait_for_port(port, 30, "tws-sim replaying from the store")
        asyncio.run(scenario())
    finally:
        sim.kill()
        _, err = sim.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode()
