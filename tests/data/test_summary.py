"""The store's summary: per symbol and bar size, first, last, rows and gaps against the calendar; its CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.data.arctic import ArcticStore
from trader.data.calendars import calendar_for, expected_bar_starts, trading_minutes
from trader.data.store import SymbolMeta
from trader.data.summary import summary
from trader.errors import ValidationError

ET = "America/New_York"
STOCKS, FUTURES = calendar_for("NASDAQ", "STK"), calendar_for("CME", "FUT")


def frame(index: pd.DatetimeIndex) -> pd.DataFrame:
    price = 100 + np.arange(len(index)) % 7
    return pd.DataFrame({"open": price, "high": price + 1.0, "low": price - 1.0, "close": price,
                         "volume": np.full(len(index), 10.0)}, index=index.rename("time"))


def write(store: ArcticStore, key: str, size: str, index: pd.DatetimeIndex, meta: SymbolMeta | None = None) -> None:
    store.write_bars(key, size, frame(index), start=index[0], end=index[-1] + pd.Timedelta(days=1), meta=meta)


@pytest.fixture
def store(tmp_path: Path) -> ArcticStore:
    s = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    minutes = trading_minutes(STOCKS, pd.Timestamp("2026-11-16", tz=ET), pd.Timestamp("2026-12-01", tz=ET))
    day = minutes.tz_convert(ET).date
    write(s, "AAPL.STK", "1m", minutes[day != date(2026, 11, 19)],
          SymbolMeta("AAPL.STK", source="ib", contract={"sec_type": "STK", "primary_exchange": "NASDAQ"}))
    write(s, "MSFT.STK", "1m", minutes)  # no metadata: the key says STK
    daily = expected_bar_starts(STOCKS, "1d", pd.Timestamp("2026-10-01", tz="UTC"), pd.Timestamp("2026-12-01", tz="UTC"))
    write(s, "AAPL.STK", "1d", daily.drop([pd.Timestamp("2026-10-12", tz="UTC"), pd.Timestamp("2026-11-03", tz="UTC")]))
    hourly = expected_bar_starts(FUTURES, "1h", pd.Timestamp("2026-11-16", tz="UTC"), pd.Timestamp("2026-11-28", tz="UTC"))
    write(s, "ES.FUT.202612", "1h", hourly, SymbolMeta("ES.FUT.202612", contract={"exchange": "CME"}))
    return s


def test_summary_reports_first_last_rows_and_missing_sessions(store: ArcticStore) -> None:
    rows = {(r.key, r.bar_size): r for r in summary(store)}
    assert list(rows) == [("AAPL.STK", "1m"), ("AAPL.STK", "1d"), ("ES.FUT.202612", "1h"), ("MSFT.STK", "1m")]
    aapl = rows["AAPL.STK", "1m"]
    assert aapl.first == pd.Timestamp("2026-11-16 04:00", tz=ET) and aapl.last == pd.Timestamp("2026-11-30 19:59", tz=ET)
    assert aapl.rows == 8 * 960 + 13 * 60 == len(store.read_bars("AAPL.STK", "1m"))  # 10 sessions less one, 1 short
    assert aapl.calendar == "XNYS" and [g.session for g in aapl.gaps] == [date(2026, 11, 19)]
    assert aapl.gaps[0].first == pd.Timestamp("2026-11-19 04:00", tz=ET)
    assert rows["MSFT.STK", "1m"].gaps == [] and rows["MSFT.STK", "1m"].calendar == "XNYS"
    assert [g.session for g in rows["AAPL.STK", "1d"].gaps] == [date(2026, 10, 12), date(2026, 11, 3)]
    es = rows["ES.FUT.202612", "1h"]
    assert es.calendar == "CMES" and es.gaps == []
    assert [r.key for r in summary(store, ["es.fut.202612"])] == ["ES.FUT.202612"]
    assert [(r.key, r.bar_size) for r in summary(store, bar_size="1 day")] == [("AAPL.STK", "1d")]
    with pytest.raises(ValidationError):
        summary(store, bar_size="7 fortnights")


def test_partial_sessions_are_gaps_on_request(store: ArcticStore) -> None:
    index = store.read_bars("MSFT.STK", "1m").index
    held = index[~((index >= pd.Timestamp("2026-11-24 12:00", tz=ET)) & (index < pd.Timestamp("2026-11-24 20:00", tz=ET)))]
    store.delete_bars("MSFT.STK", "1m")
    write(store, "MSFT.STK", "1m", held)
    [msft] = summary(store, ["MSFT.STK"])
    assert msft.gaps == []
    [msft] = summary(store, ["MSFT.STK"], partial=0.9)
    assert [(g.session, g.found, g.expected) for g in msft.gaps] == [(date(2026, 11, 24), 480, 960)]
    assert msft.gaps[0].first == pd.Timestamp("2026-11-24 12:00", tz=ET)


def test_summary_reads_only_the_index_fast_enough_for_hundreds_of_symbols(tmp_path: Path) -> None:
    s = ArcticStore(f"lmdb://{tmp_path / 'many'}")
    minutes = trading_minutes(STOCKS, pd.Timestamp("2026-06-01", tz=ET), pd.Timestamp("2026-12-01", tz=ET))
    for i in range(20):
        write(s, f"S{i}.STK", "1m", minutes)
    t0 = time.perf_counter()
    rows = summary(s)
    elapsed = time.perf_counter() - t0
    assert len(rows) == 20 and all(r.rows == len(minutes) and not r.gaps for r in rows)
    assert elapsed / 20 < 0.25, f"{elapsed / 20:.3f} s a symbol of {len(minutes)} bars"


def run(store: ArcticStore, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``trader`` command in a child process (LMDB allows one opener per process)."""
    env = {**os.environ, "TRADER_STORAGE__ARCTIC_URI": store.uri, "COLUMNS": "80",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([str(Path(sys.executable).parent / "trader"), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_history_summary_cli_table_and_json(store: ArcticStore) -> None:
    result = run(store, "history", "summary")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert any("AAPL.STK" in line and "1: 2026-11-19" in line for line in lines)
    assert any("ES.FUT.202612" in line and "2026-11-16 00:00" in line for line in lines)
    result = run(store, "--json", "history", "summary", "AAPL.STK", "--bar-size", "1d")
    [doc] = json.loads(result.stdout)
    assert doc["key"] == "AAPL.STK" and doc["bar_size"] == "1d" and doc["calendar"] == "XNYS"
    assert doc["gap_count"] == 2 and doc["gaps"][0]["session"] == "2026-10-12" and doc["first"].startswith("2026-10-01")
    missing = run(store, "history", "summary", "NOPE.STK")
    assert missing.returncode == 4 and "NOPE.STK" in missing.stderr
