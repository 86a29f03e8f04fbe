"""A backtest's bars from a real LMDB market store or a CSV/Parquet file: the range, gaps named, no data NotFound."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.backtest.given import Given
from trader.backtest.data import load_bars, load_for
from trader.backtest.engine import run
from trader.backtest.settings import BacktestSettings
from trader.data.arctic import ArcticStore
from trader.errors import NotFound, ValidationError

DAYS = ["2024-03-04", "2024-03-05", "2024-03-07", "2024-03-08"]  # Mon Tue (Wed missing) Thu Fri


def session_bars(days: list[str] = DAYS, per_day: int = 30) -> pd.DataFrame:
    """``per_day`` one-minute bars from each day's NYSE open (14:30 UTC in March before DST)."""
    index = pd.DatetimeIndex([t for d in days for t in pd.date_range(f"{d} 14:30", periods=per_day, freq="1min",
                                                                         tz="UTC")], name="time")
    close = 100 + np.sin(np.arange(len(index)) / 5.0)
    return pd.DataFrame({"open": close, "high": close + 0.1, "low": close - 0.1, "close": close, "volume": 10.0},
                        index=index)


@pytest.fixture
def store(tmp_path: Path) -> ArcticStore:
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    bars = session_bars()
    store.write_bars("AAPL.STK", "1m", bars, start=bars.index[0], end=bars.index[-1] + pd.Timedelta(minutes=1))
    spy = session_bars(per_day=30).assign(close=lambda f: f["close"] * 2, high=lambda f: f["high"] * 2 + 1)
    store.write_bars("SPY.STK", "1m", spy, start=spy.index[0], end=spy.index[-1] + pd.Timedelta(minutes=1))
    return store


def test_store_bars_are_read_by_symbol_in_the_range_and_a_missing_session_is_named(store: ArcticStore) -> None:
    settings = BacktestSettings(start=datetime(2024, 3, 5, tzinfo=UTC), end=datetime(2024, 3, 9, tzinfo=UTC),
                                benchmark="SPY")
    loaded = load_bars(["AAPL"], "1m", settings, store=store)
    frame = loaded.bars["AAPL.STK"]
    assert len(frame) == 90 and frame.index[0] == pd.Timestamp("2024-03-05 14:30", tz="UTC")
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    gap = ("AAPL.STK: no bars in the session of 2024-03-06 (2024-03-06T09:00:00+00:00 .. 2024-03-07T00:59:00+00:00): "
           "nothing decided or filled in it")  # the calendar's extended hours
    assert [s for s in loaded.skipped if "session" in s] == [gap]
    assert loaded.benchmark is not None and loaded.benchmark.name == "SPY.STK" and len(loaded.benchmark) == 90


def test_a_range_without_stored_bars_is_not_found_naming_instrument_and_range(store: ArcticStore) -> None:
    settings = BacktestSettings(start=datetime(2025, 1, 1), end=datetime(2025, 2, 1))
    with pytest.raises(NotFound, match=r"no 1m bars of AAPL \(AAPL.STK\) stored in 2025-01-01T00:00:00\+00:00 \.\. "
                                       r"2025-02-01T00:00:00\+00:00"):
        load_bars(["AAPL"], "1m", settings, store=store)
    with pytest.raises(NotFound, match="MSFT"):
        load_bars(["MSFT"], "1m", BacktestSettings(), store=store)


def test_a_csv_file_is_read_as_history_import_reads_it_and_the_backtest_runs_on_it(tmp_path: Path) -> None:
    path = tmp_path / "aapl.csv"
    session_bars().reset_index().to_csv(path, index=False)
    strategy = Given([1] * 120, sizing={"kind": "quantity", "value": 10})
    loaded = load_for(strategy, BacktestSettings(data=path))
    assert list(loaded.bars) == ["AAPL.STK"] and len(loaded.bars["AAPL.STK"]) == 120
    assert loaded.source == str(path)
    assert any("2024-03-06" in s for s in loaded.skipped)
    result = run(strategy, loaded.bars, BacktestSettings(data=path))
    assert result.orders["fill_time"].tolist() == [pd.Timestamp("2024-03-04 14:31", tz="UTC")]


def test_a_parquet_file_and_a_range_beyond_its_rows_are_named_in_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    session_bars(DAYS[:2]).to_parquet(path)
    settings = BacktestSettings(data=path, start=datetime(2024, 3, 1), end=datetime(2024, 3, 10))
    loaded = load_bars(["AAPL"], "1m", settings)
    assert len(loaded.bars["AAPL.STK"]) == 60
    assert loaded.skipped[:2] == [
        "AAPL.STK: no bars from 2024-03-01T00:00:00+00:00 to the first, 2024-03-04T14:30:00+00:00",
        "AAPL.STK: no bars from the last, 2024-03-05T14:59:00+00:00, to 2024-03-10T00:00:00+00:00"]
    with pytest.raises(NotFound, match=r"no 1m bars of AAPL in .*bars.parquet in 2025"):
        load_bars(["AAPL"], "1m", BacktestSettings(data=path, start=datetime(2025, 1, 1)))


def test_a_broken_file_is_a_validation_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text("time,open,high,low\n2024-03-04T14:30:00Z,1,2,0.5\n")
    with pytest.raises(ValidationError, match=r"broken.csv.*close"):
        load_bars(["AAPL"], "1m", BacktestSettings(data=path))


def test_a_future_symbol_read_from_a_file_names_the_contract_of_the_run_s_dates_not_of_today(tmp_path: Path) -> None:
    path = tmp_path / "es.csv"
    frame = session_bars().reset_index()
    frame["symbol"] = "ES.FUT.202412"
    frame.to_csv(path, index=False)
    # ESZ4 is the December contract of the decade around the day: the run's start, whatever day it runs on
    loaded = load_bars(["ESZ4"], "1m", BacktestSettings(data=path, start=datetime(2024, 3, 1)))
    assert list(loaded.bars) == ["ES.FUT.202412"] and len(loaded.bars["ES.FUT.202412"]) == 120
    with pytest.raises(ValidationError, match=r"'ESZ4' names another contract on each day: give its contract key"):
        load_bars(["ESZ4"], "1m", BacktestSettings(data=path))
    assert list(load_bars(["ES.FUT.202412"], "1m", BacktestSettings(data=path)).bars) == ["ES.FUT.202412"]


def test_a_file_of_another_bar_size_is_refused_naming_both_sizes(tmp_path: Path) -> None:
    path = tmp_path / "aapl.parquet"
    session_bars(DAYS[:2]).to_parquet(path)  # one-minute bars
    with pytest.raises(ValidationError, match=r"AAPL in .*aapl.parquet: its bars are 60 s apart, the run's bar "
                                              r"size is 5s"):
        load_bars(["AAPL"], "5s", BacktestSettings(data=path))
    assert len(load_bars(["AAPL"], "1m", BacktestSettings(data=path)).bars["AAPL.STK"]) == 60


def test_a_date_s_night_before_the_first_bar_is_not_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "aapl.parquet"
    session_bars(DAYS[:2]).to_parquet(path)  # 2024-03-04 14:30 .. 2024-03-05 14:59
    settings = BacktestSettings(data=path, start=datetime(2024, 3, 4), end=datetime(2024, 3, 6))
    assert not [s for s in load_bars(["AAPL"], "1m", settings).skipped if "no bars from" in s]
