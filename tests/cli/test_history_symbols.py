"""The history commands read a SYMBOL as `history get` does; exports round-trip; snapshot names checked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.invoke import data, ok, refused
from tests.data.bars import MIN, T0
from trader.config import load_settings
from trader.data.arctic import ArcticStore
from trader.data.requests import job_key
from trader.data.sources.files import FileSource

TODAY = datetime.now(UTC).date()
ESZ6, ESH7 = job_key("ESZ6", TODAY), job_key("ESH7", TODAY)  # ES.FUT.202612, ES.FUT.202703 in 2026


@pytest.fixture
def es_keys() -> tuple[str, str]:
    """The store's ES contracts as the symbol parser reads ESZ6 and ESH7 today."""
    return ESZ6, ESH7


def test_read_export_and_summary_read_a_symbol_as_get_does(store: ArcticStore, tmp_path: Path) -> None:
    # ESZ6 is read as its contract month (ES alone is ambiguous here); AAPL as its stock.
    assert len(data("history", "read", "ESZ6", "--bar-size", "1d")) == 10
    assert data("history", "read", "ESH7", "--bar-size", "1d")[0]["open"] == 6050
    assert data("history", "export", "ESZ6", "--bar-size", "1d", "--csv", str(tmp_path / "es.csv"))["symbol"] \
        == ESZ6
    assert [r["key"] for r in data("history", "summary", "AAPL")] == ["AAPL.STK"]
    assert [r["key"] for r in data("history", "summary", "ESZ6", "aapl.stk")] == ["AAPL.STK", ESZ6]
    assert "ES is ambiguous" in refused(3, "history", "read", "ES", "--bar-size", "1d")


def test_an_unknown_symbol_is_named_with_how_it_was_read(store: ArcticStore) -> None:
    message = refused(4, "history", "read", "NQZ6", "--bar-size", "1d")
    assert f"no bars stored for NQZ6 (read as {job_key('NQZ6', TODAY)}; see `trader history summary`)" in message
    assert "read as MSFT.STK" in refused(4, "history", "summary", "MSFT")
    assert "bar-sizes" not in refused(4, "history", "read", "MSFT")


def test_a_bars_csv_export_imports_back_as_the_same_bars(store: ArcticStore, tmp_path: Path) -> None:
    path = tmp_path / "aapl.csv"
    ok("history", "export", "AAPL", "--csv", str(path))
    lines = path.read_text().splitlines()
    assert lines[0] == "time,open,high,low,close,volume,wap,bar_count"
    assert lines[1].startswith("2026-03-02T14:30:00+00:00,") and lines[1].endswith(",10,100.005,3")

    async def imported() -> pd.DataFrame:
        source = FileSource(load_settings(), path=str(path))
        windows = [w.frame async for w in source.windows("AAPL.STK", "1m", T0, T0 + 120 * MIN)]
        await source.close()
        return pd.concat(windows)

    pd.testing.assert_frame_equal(asyncio.run(imported()), store.read_bars("AAPL.STK", "1m"), check_freq=False)


def test_a_ticks_csv_export_keeps_sub_seconds_and_whole_sizes(store: ArcticStore, tmp_path: Path) -> None:
    times = pd.DatetimeIndex([T0, T0 + pd.Timedelta(microseconds=250113), T0 + pd.Timedelta(seconds=1.5)],
                             name="time")
    ticks = pd.DataFrame({"bid": [5956.0, 5956.25, None], "bid_size": [207.0, 12.0, None],
                          "last": [None, None, 5956.25], "last_size": [None, None, 3.0]}, index=times)
    store.append_ticks(ESZ6, ticks)
    path = tmp_path / "es-ticks.csv"
    ok("history", "export", "ESZ6", "--ticks", "--csv", str(path))
    lines = path.read_text().splitlines()
    assert lines[1].startswith("2026-03-02T14:30:00.000000+00:00,")
    assert lines[2].startswith("2026-03-02T14:30:00.250113+00:00,5956.25,") and ",12," in lines[2]
    assert ",207," in lines[1] and lines[3].endswith(",3,")  # sizes whole, not 207.0
    back = pd.read_csv(path, index_col="time")
    back.index = pd.to_datetime(back.index, format="ISO8601", utc=True)
    stored = store.read_ticks(ESZ6)
    assert back.index.equals(stored.index)
    pd.testing.assert_frame_equal(back.astype("float64"), stored.astype("float64"), check_names=False,
                                  check_freq=False)


def test_a_missing_snapshot_is_named_and_snapshot_names_are_checked(store: ArcticStore) -> None:
    message = refused(4, "history", "read", "AAPL", "--as-of", "nosnap")
    assert "no snapshot named nosnap" in message and "AAPL" not in message
    for bad in ("bad name/x", "x" * 65, ""):
        assert "a snapshot name is 1-64 letters, digits, _ or -" in refused(3, "data", "snapshot", bad)
    assert data("data", "snapshots") == []
    ok("data", "snapshot", "Before_2026-12")
    assert f"no 1m bars stored for {ESZ6} in snapshot Before_2026-12" in refused(
        4, "history", "read", "ESZ6", "--as-of", "Before_2026-12")
