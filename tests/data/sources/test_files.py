"""CSV and Parquet imports: round trips, aliases and zones, clipping, every bad input refused before a window."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.data.sources.providers import download
from trader.config import Settings
from trader.data import open_store
from trader.data.sources.base import Source, Window
from trader.data.sources.files import FileSource, month_spans
from trader.errors import SourceError

SETTINGS = Settings()
WIDE = (pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2027-01-01", tz="UTC"))


def bars(start: str, count: int, step: str = "1min", seed: int = 0) -> pd.DataFrame:
    """Return ``count`` valid bars from ``start`` (UTC), ``step`` apart, with wap and bar_count."""
    index = pd.date_range(start, periods=count, freq=step, tz="UTC", name="time")
    k = np.arange(count) + seed
    o = np.round(100 + np.sin(k / 5) * 3, 2)
    c = np.round(o + np.cos(k / 3), 2)
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) + 0.5, "low": np.minimum(o, c) - 0.5, "close": c,
                         "volume": (100.0 + k % 17), "wap": np.round((o + c) / 2, 3),
                         "bar_count": (5 + k % 9).astype("int64")}, index=index)


def joined(windows: list[Window]) -> pd.DataFrame:
    return pd.concat([w.frame for w in windows])


def test_a_csv_round_trips_in_calendar_month_windows_clipped_to_its_rows(tmp_path: Path) -> None:
    frame = bars("2026-03-31 22:00", 240)  # 22:00 on 31 March to 02:00 on 1 April
    path = tmp_path / "aapl.csv"
    frame.to_csv(path)
    source = FileSource(SETTINGS, path=path, symbol="AAPL.STK")
    assert isinstance(source, Source) and source.name == "file" and source.covers_range is False
    windows = download(source, "AAPL.STK", "1m", *WIDE)
    first, april, end = frame.index[0], pd.Timestamp("2026-04-01", tz="UTC"), frame.index[-1] + pd.Timedelta("1min")
    assert [(w.start, w.end) for w in windows] == [(first, april), (april, end)]
    pd.testing.assert_frame_equal(joined(windows), frame, check_freq=False)


def test_a_parquet_with_a_symbol_column_serves_each_instrument(tmp_path: Path) -> None:
    aapl, msft = bars("2026-03-02 14:30", 50), bars("2026-03-02 14:30", 50, seed=7)
    table = pd.concat([aapl.assign(symbol="AAPL"), msft.assign(symbol="MSFT.STK")]).sort_index(kind="stable")
    path = tmp_path / "two.parquet"
    table.to_parquet(path)
    source = FileSource(SETTINGS, path=path)

    async def both() -> tuple[list[Window], list[Window]]:
        got = ([], [])
        for key, into in zip(("AAPL.STK", "MSFT.STK"), got, strict=True):
            into.extend([w async for w in source.windows(key, "1m", *WIDE)])
        return got

    got_aapl, got_msft = asyncio.run(both())
    pd.testing.assert_frame_equal(joined(got_aapl), aapl, check_freq=False)
    pd.testing.assert_frame_equal(joined(got_msft), msft, check_freq=False)
    with pytest.raises(SourceError, match=r"IBM.STK: file .*two.parquet: no rows for IBM.STK "
                                          r"\(its symbol column has AAPL.STK, MSFT.STK\)"):
        download(source, "IBM.STK", "1m", *WIDE)


def test_aliases_naive_times_in_a_zone_and_epoch_numbers(tmp_path: Path) -> None:
    frame = bars("2026-03-02 14:30", 30)  # 09:30 New York (EST)
    text = frame.rename(columns={"open": "Open", "high": "HIGH", "wap": "VWAP", "bar_count": "trades"})
    text.index = frame.index.tz_convert("America/New_York").tz_localize(None).rename("Timestamp")
    text.to_csv(tmp_path / "ny.csv")
    windows = download(FileSource(SETTINGS, path=tmp_path / "ny.csv", symbol="aapl.stk", tz="America/New_York"),
                       "AAPL.STK", "1m", *WIDE)
    pd.testing.assert_frame_equal(joined(windows), frame, check_freq=False)
    epoch = frame.reset_index(drop=True).assign(datetime=frame.index.asi8 // 10**6)  # milliseconds
    epoch.to_csv(tmp_path / "ms.csv", index=False)
    windows = download(FileSource(SETTINGS, path=tmp_path / "ms.csv", symbol="AAPL.STK"), "AAPL.STK", "1m", *WIDE)
    pd.testing.assert_frame_equal(joined(windows), frame, check_freq=False)


def test_offsets_that_change_with_dst_and_other_layouts_are_read(tmp_path: Path) -> None:
    rows = "time,open,high,low,close,volume\n{}\n{}\n"
    bar = "1,2,0.5,1.5,10"
    (tmp_path / "dst.csv").write_text(rows.format(f"2026-03-06T09:30:00-05:00,{bar}", f"2026-03-09T09:30-04:00,{bar}"))
    (tmp_path / "us.csv").write_text(rows.format(f"03/06/2026 09:30,{bar}", f"03/09/2026 09:30,{bar}"))
    want = pd.DatetimeIndex(["2026-03-06 14:30", "2026-03-09 13:30"], tz="UTC", name="time")
    for name, tz in (("dst.csv", "UTC"), ("us.csv", "America/New_York")):
        windows = download(FileSource(SETTINGS, path=tmp_path / name, symbol="X.STK", tz=tz), "X.STK", "1m", *WIDE)
        assert joined(windows).index.equals(want), name
    (tmp_path / "mixed.csv").write_text(rows.format(f"2026-03-06T09:30:00-05:00,{bar}", f"2026-03-09 09:30,{bar}"))
    with pytest.raises(SourceError, match="column 'time' mixes times with and without a UTC offset"):
        download(FileSource(SETTINGS, path=tmp_path / "mixed.csv", symbol="X.STK"), "X.STK", "1m", *WIDE)


def test_daily_rows_are_stamped_midnight_utc_and_only_the_range_asked_is_yielded(tmp_path: Path) -> None:
    frame = bars("2026-03-02", 20, step="B")
    written = frame.copy()
    written.index = (frame.index.tz_localize(None) + pd.Timedelta(hours=16)).rename("date")  # the close, NY time
    written.to_csv(tmp_path / "daily.csv")
    source = FileSource(SETTINGS, path=tmp_path / "daily.csv", symbol="SPY.STK", tz="America/New_York")
    start, end = pd.Timestamp("2026-03-10", tz="UTC"), pd.Timestamp("2026-03-20", tz="UTC")
    windows = download(source, "SPY.STK", "1d", start, end)
    assert [(w.start, w.end) for w in windows] == [(start, end)]
    pd.testing.assert_frame_equal(joined(windows), frame[(frame.index >= start) & (frame.index < end)],
                                  check_freq=False)
    before = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-02-01", tz="UTC")
    (empty,) = download(source, "SPY.STK", "1d", *before)  # no rows there: one empty window, as IB's answer
    assert (empty.start, empty.end, len(empty.frame)) == (*before, 0)
    assert list(empty.frame.columns) == list(windows[0].frame.columns)


def _csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "bad.csv"
    frame.to_csv(path)
    return path


GOOD = bars("2026-03-02 14:30", 10)


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: _csv(p, GOOD.drop(columns="volume")), "no volume column (it has open, high, low, close, wap, "),
    (lambda p: _csv(p, GOOD.iloc[[0, 2, 1, 3]]), "bars are not in time order (at 2026-03-02T14:31:00+00:00)"),
    (lambda p: _csv(p, GOOD.iloc[[0, 1, 1, 2]]), "duplicated bar at 2026-03-02T14:31:00+00:00"),
    (lambda p: _csv(p, GOOD.assign(high=np.where(np.arange(10) == 4, 1.0, GOOD["high"]))),
     "the bar at 2026-03-02T14:34:00+00:00 has high < low"),
    (lambda p: _csv(p, GOOD.rename_axis("when")), "no time column (time, timestamp, datetime, date) among when, "),
    (lambda p: _csv(p, GOOD.set_axis(["soon"] * 10).rename_axis("time")), "column 'time' holds something that "),
    (lambda p: _csv(p, bars("2026-03-02 14:30", 10, step="30s")), "30 s apart at 2026-03-02T14:30:30+00:00: not 1m"),
    (lambda p: p / "absent.csv", "cannot be read: [Errno 2] No such file or directory"),
    (lambda p: p / "bars.xlsx", "not a CSV (.csv, .csv.gz, .txt) or Parquet (.parquet, .pq) file"),
], ids=["missing-column", "unsorted", "duplicated", "high<low", "no-time", "bad-time", "too-close", "absent",
        "xlsx"])
def test_a_bad_file_is_refused_naming_it_and_the_instrument_before_any_window(tmp_path: Path, make, says) -> None:
    path = make(tmp_path)
    got: list[Window] = []
    with pytest.raises(SourceError) as caught:
        download(FileSource(SETTINGS, path=path, symbol="AAPL.STK"), "AAPL.STK", "1m", *WIDE, got)
    assert got == [] and not caught.value.retryable
    assert str(caught.value).startswith(f"AAPL.STK: file {path}: ") and says in str(caught.value)


def test_a_file_without_symbols_serves_one_instrument_only(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD)
    source = FileSource(SETTINGS, path=path)

    async def two() -> list[Window]:
        first = [w async for w in source.windows("AAPL.STK", "1m", *WIDE)]
        with pytest.raises(SourceError, match=r"MSFT.STK: file .*: holds the bars of AAPL.STK only"):
            [w async for w in source.windows("MSFT.STK", "1m", *WIDE)]
        return first

    assert len(joined(asyncio.run(two()))) == 10
    with pytest.raises(SourceError, match="holds the bars of SPY.STK only"):
        download(FileSource(SETTINGS, path=path, symbol="SPY.STK"), "AAPL.STK", "1m", *WIDE)


def test_month_spans_cut_at_each_month() -> None:
    a, b = pd.Timestamp("2026-01-15 10:00", tz="UTC"), pd.Timestamp("2026-03-02", tz="UTC")
    assert [s for s, _ in month_spans(a, b)] == [a, pd.Timestamp("2026-02-01", tz="UTC"),
                                                  pd.Timestamp("2026-03-01", tz="UTC")]


def test_an_import_lands_in_the_store_and_a_refused_one_leaves_it_untouched(tmp_path: Path) -> None:
    store = open_store(uri=f"lmdb://{tmp_path / 'arctic'}")
    march = bars("2026-03-31 23:00", 120)
    march.to_parquet(tmp_path / "good.parquet")
    for w in download(FileSource(SETTINGS, path=tmp_path / "good.parquet", symbol="AAPL.STK"), "AAPL.STK", "1m",
                      *WIDE):
        store.write_bars("AAPL.STK", "1m", w.frame, start=w.start, end=w.end)
    before = store.read_bars("AAPL.STK", "1m")
    pd.testing.assert_frame_equal(before, march, check_freq=False)
    bad = bars("2026-03-31 23:30", 120, seed=3)  # overlaps what is stored, one bar broken at its very end
    bad.iloc[-1, bad.columns.get_loc("low")] = bad["high"].iloc[-1] + 1
    bad.to_parquet(tmp_path / "bad.parquet")
    got: list[Window] = []
    with pytest.raises(SourceError, match="has high < low"):
        for w in download(FileSource(SETTINGS, path=tmp_path / "bad.parquet", symbol="AAPL.STK"), "AAPL.STK",
                          "1m", *WIDE, got):
            store.write_bars("AAPL.STK", "1m", w.frame, start=w.start, end=w.end)
    assert got == []
    pd.testing.assert_frame_equal(store.read_bars("AAPL.STK", "1m"), before)


@pytest.mark.parametrize(("when", "says"), [
    ("2026-11-01 01:30:00", "2026-11-01 01:30:00 is ambiguous in America/New_York (it comes twice"),
    ("2026-03-08 02:30:00", "2026-03-08 02:30:00 does not exist in America/New_York (the clocks skip it"),
], ids=["ambiguous", "non-existent"])
def test_a_naive_time_dst_makes_ambiguous_or_skips_is_refused_with_the_remedy(
        tmp_path: Path, when: str, says: str) -> None:
    frame = bars("2026-03-02 14:30", 3).reset_index()
    frame["time"] = ["2026-03-01 10:00:00", when, "2026-12-01 10:00:00"]
    path = tmp_path / "fx.csv"
    frame.to_csv(path, index=False)
    source = FileSource(SETTINGS, path=path, symbol="EUR.CASH.USD", tz="America/New_York")

    async def twice() -> list[str]:
        said = []
        for _ in range(2):  # as a universe job asks for each instrument: the file is read once, refused once
            with pytest.raises(SourceError) as caught:
                [w async for w in source.windows("EUR.CASH.USD", "1m", *WIDE)]
            assert not caught.value.retryable
            said.append(str(caught.value))
            path.unlink(missing_ok=True)  # a second read would say the file is missing
        return said

    first, second = asyncio.run(twice())
    assert says in first and "a UTC offset" in first and "tz=UTC" in first and second == first
