"""Replay: bars and ticks from CSV and Parquet files drive instruments at a chosen speed."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from ib_async import Stock

from tests.sim.conftest import ESZ6, ManualClock
from tests.sim.simulator import connect, running_sim, sim_config, wait_for
from trader.domain import Action, OrderType, TimeInForce
from trader.errors import ConfigError
from trader.sim.catalogue import Catalogue, ReplayConfig
from trader.sim.market import MarketGenerator
from trader.sim.orders import OrderTicket
from trader.sim.replay import ReplaySource
from trader.sim.replay_data import FileReplayData
from trader.sim.server import TwsSimServer

AAPL, ES, SPY = 265598, ESZ6, 756733
T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def write_bars(path: Path, rows: list[tuple[str, int, str, str, str, str, int]]) -> Path:
    """rows: (symbol, minute offset, open, high, low, close, volume)."""
    frame = pd.DataFrame(
        [{"time": (T0 + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"), "symbol": sym, "open": o, "high": h,
          "low": lo, "close": c, "volume": v} for sym, m, o, h, lo, c, v in rows])
    if path.suffix == ".parquet":
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        for column in ("open", "high", "low", "close"):
            frame[column] = frame[column].astype(float)
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def source(catalogue: Catalogue, path: Path, **config: object) -> ReplaySource:
    return ReplaySource(FileReplayData(path), catalogue, ReplayConfig(file=path, **config))  # type: ignore[arg-type]


def market_with(catalogue: Catalogue, replay: ReplaySource, clock: ManualClock) -> MarketGenerator:
    market = MarketGenerator(catalogue, seed=1, tick_rate=4.0, start=clock())
    market.drive(replay)
    return market


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_bar_plays_open_low_high_close_and_its_volume(catalogue: Catalogue, tmp_path: Path, suffix: str) -> None:
    path = write_bars(tmp_path / f"bars{suffix}", [
        ("AAPL", 0, "180.00", "181.00", "179.50", "180.50", 1000),
        ("AAPL", 1, "180.50", "180.60", "179.00", "179.20", 400),
    ])
    clock = ManualClock()
    replay = source(catalogue, path, speed=60)
    assert replay.conids == {AAPL} and replay.rows == 8
    market = market_with(catalogue, replay, clock)
    aapl = market.state(AAPL)
    assert aapl.close == Decimal("180.00") and aapl.last is None  # the first price is the previous close
    market.step(clock())  # the first step plays the rows at the replay's origin: the open
    assert aapl.last == Decimal("180.00")
    clock.advance(0.999)  # 59.94 s of data: the rest of the first bar, not the second
    market.step(clock())
    assert [q.last for q in aapl.passed] == [Decimal("179.50"), Decimal("181.00"), Decimal("180.50")]
    assert aapl.volume == 1000 and aapl.high == Decimal("181.00") and aapl.low == Decimal("179.50")
    for quote in aapl.passed:  # the quote brackets each print with the instrument's one-tick spread
        assert quote.bid <= quote.last <= quote.ask and quote.ask - quote.bid == Decimal("0.01")  # type: ignore[operator]
    clock.advance(1)
    market.step(clock())
    assert aapl.last == Decimal("179.20") and aapl.volume == 1400 and replay.done
    assert market.state(SPY).time == clock()  # the others keep walking
    status = replay.status()
    assert status["rows_played"] == 8 and status["done"] is True


def test_ticks_keep_their_bid_ask_and_sizes(catalogue: Catalogue, tmp_path: Path) -> None:
    path = tmp_path / "ticks.parquet"
    pd.DataFrame({
        "timestamp": pd.to_datetime([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]),
        "symbol": ["ESZ6", "ESZ6", "ESZ6"],
        "bid": [5900.25, 5900.50, None], "ask": [5900.75, 5900.75, None],
        "bid_size": [12, 7, None], "ask_size": [30, 4, None],
        "last": [None, None, 5900.75], "last_size": [None, None, 3],
    }).to_parquet(path)
    clock = ManualClock()
    market = market_with(catalogue, source(catalogue, path, speed=1), clock)
    es = market.state(ES)
    assert (es.bid, es.ask, es.bid_size, es.ask_size) == (Decimal("5900.25"), Decimal("5900.75"), 12, 30)
    market.step(clock())
    clock.advance(1)
    market.step(clock())
    assert (es.bid, es.ask, es.bid_size, es.ask_size) == (Decimal("5900.50"), Decimal("5900.75"), 7, 4)
    clock.advance(1)
    market.step(clock())
    assert es.bid == Decimal("5900.50") and es.last == Decimal("5900.75") and es.last_size == 3 and es.volume == 3


def test_pause_holds_the_replay_and_loop_starts_again(catalogue: Catalogue, tmp_path: Path) -> None:
    path = write_bars(tmp_path / "bars.csv", [("SPY", m, "500", "501", "499", "500.5", 100) for m in range(3)])
    clock = ManualClock()
    replay = source(catalogue, path, speed=60, loop=True)
    market = market_with(catalogue, replay, clock)
    market.step(clock())
    market.paused = True
    for _ in range(10):
        clock.advance(1)
        market.step(clock())
    market.paused = False
    clock.advance(0.5)
    market.step(clock())
    assert replay.rows_played == 3  # the first bar's open, low, high: half a minute of data after the pause
    clock.advance(10)
    market.step(clock())
    assert replay.loops == 1 and not replay.done


def test_align_starts_on_a_multiple_of_the_clock_and_resumes_in_phase(catalogue: Catalogue, tmp_path: Path) -> None:
    # Minute bars at speed 12 with align 5: each bar fills one epoch-aligned 5-second live bar.
    path = write_bars(tmp_path / "bars.csv", [("SPY", m, "500", "501", "499", "500.5", 100) for m in range(3)])
    clock = ManualClock(T0 + timedelta(seconds=2.3))
    replay = source(catalogue, path, speed=12, align=5)
    market = market_with(catalogue, replay, clock)
    market.step(clock())
    assert replay.rows_played == 0 and replay.status()["anchor"] == {"clock": T0 + timedelta(seconds=5), "data": T0}
    clock.advance(2.69)  # 14:30:04.99: still waiting
    market.step(clock())
    assert replay.rows_played == 0
    clock.advance(0.01)  # 14:30:05: the first bar's open
    market.step(clock())
    assert replay.rows_played == 1
    clock.advance(1.3)  # 15.6 s of data: the open and the low of the first bar
    market.step(clock())
    assert replay.rows_played == 2
    market.paused = True
    for _ in range(7):
        clock.advance(1)
        market.step(clock())
    market.paused = False
    market.step(clock())  # 14:30:13.3: resumes at 14:30:16.3, the phase the cursor was at
    assert replay.status()["anchor"] == {"clock": T0 + timedelta(seconds=16.3), "data": T0 + timedelta(seconds=15.6)}
    clock.advance(6.69)  # 14:30:19.99: the first bar's high and close, not the second bar
    market.step(clock())
    assert replay.rows_played == 4
    clock.advance(0.01)  # 14:30:20: the second bar's open, on a multiple of 5 again
    market.step(clock())
    assert replay.rows_played == 5 and replay.status()["data_time"] == T0 + timedelta(minutes=1)


def test_start_skips_earlier_rows_and_history_ends_at_the_first_replayed_price(
        catalogue: Catalogue, tmp_path: Path) -> None:
    path = write_bars(tmp_path / "bars.csv", [
        ("AAPL", 0, "170", "171", "169", "170", 5), ("AAPL", 1, "190", "191", "189", "190", 10)])
    replay = source(catalogue, path, start=T0 + timedelta(minutes=1))
    assert replay.rows == 4
    market = market_with(catalogue, replay, ManualClock())
    assert market.state(AAPL).close == Decimal(190)


@pytest.mark.parametrize(("rows", "config", "message"), [
    ("time,symbol,open,high,low,close\n2024-03-01 14:30,ZZZZ,1,2,0.5,1\n", {}, "unknown symbol 'ZZZZ'"),
    ("time,symbol,open,high,low,close\n2024-03-01 14:30,AAPL,1,2,1.5,1\n", {}, "outside high-low"),
    ("time,symbol,price\n2024-03-01 14:30,AAPL,1\n", {}, "expected bar columns"),
    ("when,symbol,last\n2024-03-01 14:30,AAPL,1\n", {}, "no time column"),
    ("time,last\n2024-03-01 14:30,1\n", {}, "no symbol or conid column"),
    ("time,conid,last\n2024-03-01 14:30,42,1\n", {}, "conid 42 is not in the catalogue"),
    ("time,symbol,last\n2024-03-01 14:30,AAPL,1\n", {"start": datetime(2025, 1, 1)}, "no rows at or after"),
    ("time,symbol,last\n2024-03-01 14:31,AAPL,1\n2024-03-01 14:30,AAPL,1\n", {}, None),  # sorted within a chunk
    ("time,symbol,last\n2024-03-01 14:30,ES,1\n", {}, "unknown symbol 'ES'"),  # two ES expiries: ambiguous
    ("time,symbol,last\n2024-03-01 14:30,SPOOS,5900\n", {"symbols": {"SPOOS": 999}}, "lacks"),
])
def test_bad_files_are_refused_naming_the_problem(
        catalogue: Catalogue, tmp_path: Path, rows: str, config: dict[str, object], message: str | None) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    if message is None:
        assert source(catalogue, path, **config).rows == 2
        return
    with pytest.raises(ConfigError, match=message):
        source(catalogue, path, **config)


def test_rows_out_of_order_across_chunks_are_refused(catalogue: Catalogue, tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text("time,symbol,last\n2024-03-01 14:31,AAPL,1\n2024-03-01 14:30,AAPL,1\n")
    with pytest.raises(ConfigError, match="not in time order"):
        ReplaySource(FileReplayData(path, chunk_rows=1), catalogue, ReplayConfig(file=path))
    with pytest.raises(ConfigError, match="does not exist"):
        FileReplayData(tmp_path / "missing.csv")


def test_a_resting_limit_fills_at_a_bar_extreme_inside_one_step(tmp_path: Path) -> None:
    """A whole bar played in one step still reaches the engine print by print."""
    path = write_bars(tmp_path / "bars.csv", [("AAPL", 0, "180.00", "180.10", "178.00", "180.05", 400)])
    config = sim_config().model_copy(update={"replay": ReplayConfig(file=path, speed=600)})
    clock = ManualClock()
    server = TwsSimServer(config, port=0, clock=clock)
    aapl = server.catalogue.get(AAPL)
    assert aapl is not None
    server.dispatch(server.engine.place(OrderTicket(
        client_id=1, order_id=1, instrument=aapl, action=Action.BUY, quantity=Decimal(10),
        order_type=OrderType.LMT, limit_price=Decimal("178.50"), tif=TimeInForce.GTC)))
    server.market_step(clock())
    clock.advance(1)  # ten minutes of data: the low and the close in one step
    server.market_step(clock())
    [execution] = server.engine.executions
    assert execution.price <= Decimal("178.50") and server.market.state(AAPL).last == Decimal("180.05")
    assert server.status()["replay"]["done"] is True


@pytest.mark.slow
def test_ib_async_streams_the_replayed_prices(tmp_path: Path) -> None:
    prices = [f"{180 + i / 100:.2f}" for i in range(40)]
    path = tmp_path / "ticks.csv"
    path.write_text("time,symbol,last,last_size\n" + "".join(
        f"{(T0 + timedelta(seconds=i)).isoformat()},AAPL,{p},100\n" for i, p in enumerate(prices)))
    config = sim_config(tick_rate=20).model_copy(update={"replay": ReplayConfig(file=path, speed=10)})

    async def scenario() -> None:
        async with running_sim(config) as server:
            ib = await connect(server, 1)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            ticker = ib.reqMktData(aapl)
            seen: set[float] = set()
            ticker.updateEvent += lambda t: seen.add(t.last)
            await wait_for(lambda: server.market.replay.done, timeout=10, what="the replay's end")  # type: ignore[union-attr]
            await wait_for(lambda: ticker.last == 180.39, what="the last replayed price")
            played = {s for s in seen if not math.isnan(s)}
            assert all(f"{s:.2f}" in prices for s in played) and len(played) >= 5
            ib.disconnect()

    asyncio.run(scenario())
