"""The ArcticDB market store for real, in temp dirs: idempotent windows, metadata, resampling, snapshots, failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.data.bars import MIN, T0, bars
from trader.data import SymbolMeta, open_store
from trader.data.arctic import ArcticStore
from trader.data.frames import check_bars, resample_bars
from trader.errors import Conflict, NotFound, StorageError

KEY = "AAPL.STK"
HOUR = pd.Timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> ArcticStore:
    return ArcticStore(f"lmdb://{tmp_path / 'arctic'}")


def test_overlapping_windows_are_replaced_exactly(store: ArcticStore) -> None:
    first = bars(T0, 60)
    store.write_bars(KEY, "1m", first, start=T0, end=T0 + HOUR)
    # the second window overlaps the first one's second half and goes 30 minutes past it
    second = bars(T0 + 30 * MIN, 60, base=200.0)
    store.write_bars(KEY, "1m", second, start=T0 + 30 * MIN, end=T0 + 90 * MIN)
    stored = store.read_bars(KEY, "1m")
    expected = pd.concat([first.iloc[:30], second])
    assert stored.index.is_unique and len(stored) == 90
    assert (stored.index == pd.date_range(T0, periods=90, freq=MIN, tz="UTC")).all()  # no gap
    pd.testing.assert_frame_equal(stored, expected, check_freq=False, check_names=False)
    # the same window again: nothing changes
    store.write_bars(KEY, "1m", second, start=T0 + 30 * MIN, end=T0 + 90 * MIN)
    pd.testing.assert_frame_equal(store.read_bars(KEY, "1m"), stored)


def test_a_window_with_fewer_bars_removes_the_stale_ones(store: ArcticStore) -> None:
    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + HOUR)
    fewer = bars(T0 + 10 * MIN, 5, step=2 * MIN)  # 10, 12, ... 18 minutes
    store.write_bars(KEY, "1m", fewer, start=T0 + 10 * MIN, end=T0 + 20 * MIN)
    stored = store.read_bars(KEY, "1m")
    window = stored[(stored.index >= T0 + 10 * MIN) & (stored.index < T0 + 20 * MIN)]
    assert list(window.index) == list(fewer.index)
    assert len(stored) == 60 - 10 + 5


def test_a_range_read_is_half_open(store: ArcticStore) -> None:
    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + HOUR)
    part = store.read_bars(KEY, "1m", T0 + 10 * MIN, T0 + 20 * MIN)
    assert part.index[0] == T0 + 10 * MIN and part.index[-1] == T0 + 19 * MIN and len(part) == 10
    assert str(part.index.tz) == "UTC" and part.index.name == "time"


def test_symbol_metadata_is_kept_and_readable(store: ArcticStore) -> None:
    meta = SymbolMeta(KEY, source="ib", timezone="America/New_York", contract={"conId": 265598, "symbol": "AAPL"})
    store.write_bars(KEY, "1m", bars(T0, 10), start=T0, end=T0 + HOUR, meta=meta)
    store.write_bars(KEY, "1m", bars(T0 + HOUR, 10), start=T0 + HOUR, end=T0 + 2 * HOUR)  # no meta: kept
    assert store.meta(KEY, "1m") == meta
    store.write_bars(KEY, "1m", bars(T0, 0), start=T0, end=T0 + HOUR)  # an empty window keeps it too
    assert store.meta(KEY, "1 min") == meta
    store.append_ticks(KEY, pd.DataFrame({"bid": [1.0]}, index=pd.DatetimeIndex([T0])), meta=meta)
    assert store.meta(KEY, "ticks") == meta
    with pytest.raises(NotFound):
        store.meta("MSFT.STK", "1m")


def test_a_write_merges_its_metadata_into_the_stored_one(store: ArcticStore, tmp_path: Path) -> None:
    contract = {"conId": "265598", "symbol": "AAPL", "primary_exchange": "NASDAQ"}
    store.write_bars(KEY, "1m", bars(T0, 10), start=T0, end=T0 + HOUR,
                     meta=SymbolMeta(KEY, source="ib", timezone="America/New_York", contract=contract))
    # a download from a source that knows no contract: its source is recorded, the contract and zone stay
    store.write_bars(KEY, "1m", bars(T0 + HOUR, 10), start=T0 + HOUR, end=T0 + 2 * HOUR,
                     meta=SymbolMeta(KEY, source="yahoo", extra={"note": "x"}))
    want = SymbolMeta(KEY, source="yahoo", timezone="America/New_York", contract=contract, extra={"note": "x"})
    assert store.meta(KEY, "1m") == want
    store.write_bars(KEY, "1m", bars(T0, 10), start=T0, end=T0 + HOUR,
                     meta=SymbolMeta(KEY, contract={"conId": "1"}))  # a field given replaces that field only
    assert store.meta(KEY, "1m").contract == {**contract, "conId": "1"}
    fresh = ArcticStore(store._uri)  # another process's view: merged in the store, not in a cache
    assert fresh.meta(KEY, "1m").source == "yahoo"
    assert fresh.meta(KEY, "1m").timezone == "America/New_York"


def test_records_are_written_without_arcticdb_s_empty_frame_warning(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from trader.data.arctic import ArcticStore
        store = ArcticStore("lmdb://{tmp_path / 'arctic'}")
        store.put_record("universes", "tech", {{"members": ["AAPL.STK", "MSFT.STK"]}})
        print(store.get_record("universes", "tech"))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())}, check=True)
    assert "['AAPL.STK', 'MSFT.STK']" in done.stdout
    assert "empty dataframe" not in (done.stderr + done.stdout).lower()


def test_a_coarser_size_is_resampled_from_the_finest_finer_one(store: ArcticStore) -> None:
    one = bars(T0, 60)
    one["volume"] = np.arange(60, dtype=float) % 4  # some bars without volume
    store.write_bars(KEY, "1m", one, start=T0, end=T0 + HOUR)
    store.write_bars(KEY, "5m", bars(T0, 4, step=5 * MIN, base=500.0), start=T0, end=T0 + HOUR)
    fifteen = store.read_bars(KEY, "15 mins")
    assert len(fifteen) == 4 and fifteen["open"].iloc[0] == one["open"].iloc[0]  # from 1m, not 5m
    first = one.iloc[:15]
    row = fifteen.iloc[0]
    assert row["high"] == first["high"].max() and row["low"] == first["low"].min()
    assert row["close"] == first["close"].iloc[-1] and row["volume"] == first["volume"].sum()
    assert row["bar_count"] == 45
    assert row["wap"] == pytest.approx((first["wap"] * first["volume"]).sum() / first["volume"].sum())
    with pytest.raises(NotFound):
        store.read_bars("MSFT.STK", "5m")


def test_days_are_resampled_by_the_exchange_s_date() -> None:
    # 23:30 .. 01:29 UTC is 18:30 .. 20:29 in New York: one day there, two in UTC
    frame = bars(pd.Timestamp("2026-03-02 23:30", tz="UTC"), 120)
    days = resample_bars(frame, 86_400, "America/New_York")
    assert list(days.index) == [pd.Timestamp("2026-03-02", tz="UTC")]
    assert days["volume"].iloc[0] == frame["volume"].sum()
    assert len(resample_bars(frame, 86_400)) == 2


def test_snapshots_are_read_as_of_and_deleted(store: ArcticStore) -> None:
    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + HOUR)
    store.put_record("universes", "tech", {"members": [KEY]})
    store.snapshot("before")
    with pytest.raises(Conflict):
        store.snapshot("before")
    store.write_bars(KEY, "1m", bars(T0, 10, base=300.0), start=T0, end=T0 + HOUR)
    store.write_bars("MSFT.STK", "1m", bars(T0, 10), start=T0, end=T0 + HOUR)
    assert len(store.read_bars(KEY, "1m")) == 10
    old = store.read_bars(KEY, "1m", as_of="before")
    pd.testing.assert_frame_equal(old, bars(T0, 60), check_freq=False)
    assert len(store.read_bars(KEY, "5m", as_of="before")) == 12  # resampled as of the snapshot too
    with pytest.raises(NotFound, match="in snapshot before"):
        store.read_bars("MSFT.STK", "1m", as_of="before")
    info = store.snapshot_info()["before"]
    assert info["libraries"] == ["bars.1m", "records.universes"] and info["created"]
    assert store.delete_snapshot("before") and not store.delete_snapshot("before")
    assert store.snapshots() == []


def test_an_empty_store_has_nothing_to_snapshot(store: ArcticStore) -> None:
    with pytest.raises(NotFound, match="empty"):
        store.snapshot("nothing")


def test_the_lmdb_map_full_is_a_storage_error_and_leaves_the_store_whole(tmp_path: Path) -> None:
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}?map_size=2MB")
    store.write_bars(KEY, "1m", bars(T0, 100), start=T0, end=T0 + 100 * MIN)
    before = store.read_bars(KEY, "1m")
    with pytest.raises(StorageError, match="the store is full: LMDB's map size is reached") as caught:
        store.write_bars(KEY, "1m", bars(T0, 200_000), start=T0, end=T0 + 200_000 * MIN)
    assert KEY in str(caught.value) and caught.value.exit_code == 14
    pd.testing.assert_frame_equal(store.read_bars(KEY, "1m"), before)  # no partial window


READ_ONLY = textwrap.dedent("""
    import sys
    from trader.data.arctic import ArcticStore
    from trader.errors import StorageError
    try:
        ArcticStore("lmdb://" + sys.argv[1]).read_bars("AAPL.STK", "1m")
    except StorageError as exc:
        print("StorageError:", exc)
""")


def test_a_read_only_directory_is_a_storage_error(tmp_path: Path) -> None:
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"ro-store-{os.getpid()}"
    base.mkdir(mode=0o755)
    try:
        path = base / "arctic"
        ArcticStore(f"lmdb://{path}").write_bars(KEY, "1m", bars(T0, 10), start=T0, end=T0 + HOUR)
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        argv = [sys.executable, "-c", READ_ONLY, str(path)]
        if os.geteuid() == 0:  # root writes anywhere: the check runs as nobody, for whom chmod holds
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=Path.cwd(), check=False,
                              env={**os.environ, "PYTHONPATH": str(Path.cwd()), "HOME": str(base)})
        assert f"StorageError: the market store's directory {path} is read-only" in done.stdout, done.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=True)
        shutil.rmtree(base)


def test_a_write_waits_for_the_symbol_s_lock_held_by_another_process(store: ArcticStore, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from trader.data.locks import SymbolLocks
        from pathlib import Path
        with SymbolLocks(Path({str(tmp_path / 'arctic')!r})).hold("bars.1m", {KEY!r}):
            print("held", flush=True)
            time.sleep(1.5)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        import time

        t0 = time.monotonic()
        store.write_bars(KEY, "1m", bars(T0, 10), start=T0, end=T0 + HOUR)
        waited = time.monotonic() - t0
        assert waited > 0.5, waited  # it waited for the other writer
        store.write_bars("MSFT.STK", "1m", bars(T0, 10), start=T0, end=T0 + HOUR)  # another symbol: no wait
    finally:
        holder.wait(10)


def test_open_store_resolves_a_relative_lmdb_path_against_the_home(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    monkeypatch.setenv("TRADER_STORAGE__ARCTIC_URI", "lmdb://data/arctic?map_size=64MB")
    from trader.config import load_settings

    store = open_store(load_settings())
    assert isinstance(store, ArcticStore) and store.uri == f"lmdb://{tmp_path}/data/arctic?map_size=64MB"
    store.write_bars(KEY, "1d", bars(T0.normalize(), 1, step=pd.Timedelta(days=1)),
                     start=T0.normalize(), end=T0.normalize() + pd.Timedelta(days=1))
    assert (tmp_path / "data" / "arctic").is_dir()


def test_old_versions_are_pruned_but_not_those_a_snapshot_names(store: ArcticStore) -> None:
    from trader.data.arctic import PRUNE_EVERY

    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + HOUR)
    store.snapshot("kept")
    for n in range(3 * PRUNE_EVERY):
        store.write_bars(KEY, "1m", bars(T0 + n * MIN, 1, base=200.0 + n), start=T0 + n * MIN,
                         end=T0 + (n + 1) * MIN)
    versions = store.library("bars.1m").list_versions(KEY)
    assert len(versions) <= PRUNE_EVERY + 1, len(versions)  # the unpruned ones and the snapshot's
    assert len(store.read_bars(KEY, "1m", as_of="kept")) == 60
    assert store.read_bars(KEY, "1m")["open"].iloc[:3].tolist() == [200.0, 201.0, 202.0]


WRITER = textwrap.dedent("""
    import sys
    import pandas as pd
    from tests.data.bars import bars
    from trader.data.arctic import ArcticStore
    path, first = sys.argv[1], int(sys.argv[2])
    store = ArcticStore("lmdb://" + path)
    t0 = pd.Timestamp("2026-03-02 14:30", tz="UTC")
    for n in range(first, 40, 2):  # this writer's windows: every other 10 minutes
        start = t0 + pd.Timedelta(minutes=10 * n)
        store.write_bars("AAPL.STK", "1m", bars(start, 10, base=100.0 + n), start=start,
                         end=start + pd.Timedelta(minutes=10))
""")


def test_two_processes_writing_one_symbol_lose_no_window(tmp_path: Path) -> None:
    path = tmp_path / "arctic"
    ArcticStore(f"lmdb://{path}").write_bars(KEY, "1m", bars(T0, 1), start=T0, end=T0 + MIN)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(first)], env=env)
               for first in (0, 1)]
    assert [w.wait(120) for w in writers] == [0, 0]
    stored = ArcticStore(f"lmdb://{path}").read_bars(KEY, "1m")
    assert len(stored) == 400 and stored.index.is_unique  # both writers' 20 windows each, none lost
    firsts = stored["open"].iloc[::10].tolist()
    assert firsts == [100.0 + n for n in range(40)]


def test_one_lmdb_path_is_opened_once_per_process_however_spelt(tmp_path: Path,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    first = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    first.write_bars(KEY, "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    second = ArcticStore(f"lmdb://{tmp_path}/./arctic/?map_size=1GB")
    assert len(second.read_bars(KEY, "1m")) == 5
    assert "already been opened in this process" not in capfd.readouterr().err


def test_windows_with_other_optional_columns_write_over_each_other(store: ArcticStore) -> None:
    # a Polygon backfill (wap and bar_count), then IB windows (bar_count only), Yahoo (neither)
    polygon = bars(T0, 60)
    store.write_bars(KEY, "1m", polygon, start=T0, end=T0 + HOUR)
    ib = bars(T0 + 10 * MIN, 10, base=200.0).drop(columns=["wap"])
    store.write_bars(KEY, "1m", ib, start=T0 + 10 * MIN, end=T0 + 20 * MIN)
    yahoo = bars(T0 + 30 * MIN, 10, base=300.0).drop(columns=["wap", "bar_count"])
    store.write_bars(KEY, "1m", yahoo, start=T0 + 30 * MIN, end=T0 + 40 * MIN)
    stored = store.read_bars(KEY, "1m")
    assert list(stored.columns) == ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    assert len(stored) == 60 and stored["bar_count"].dtype == "int64"
    assert stored["wap"].iloc[10:20].isna().all() and (stored["bar_count"].iloc[10:20] == 3).all()
    assert stored["wap"].iloc[30:40].isna().all() and (stored["bar_count"].iloc[30:40] == -1).all()
    assert stored["wap"].iloc[:10].notna().all()
    # a later window with wap added over the Yahoo one
    store.write_bars(KEY, "1m", bars(T0 + 30 * MIN, 10), start=T0 + 30 * MIN, end=T0 + 40 * MIN)
    assert store.read_bars(KEY, "1m")["wap"].notna().sum() == 50


def test_unknown_waps_and_counts_do_not_bias_a_resample() -> None:
    frame = bars(T0, 4)
    frame["wap"] = [100.0, np.nan, 102.0, np.nan]
    frame["volume"] = [10.0, 30.0, 10.0, 5.0]
    frame["bar_count"] = [3, -1, 3, 3]
    row = resample_bars(check_bars(frame, KEY), 3600).iloc[0]
    assert row["wap"] == pytest.approx(101.0)  # weighted over the bars that have a wap only
    assert row["bar_count"] == -1  # one bar's count unknown: the sum is unknown
    assert check_bars(frame.drop(columns=["wap"]), KEY)["wap"].isna().all()


def test_a_resampled_read_holds_whole_bars_and_none_before_its_start(store: ArcticStore) -> None:
    day = pd.Timestamp("2026-03-02 14:00", tz="UTC")
    store.write_bars(KEY, "1m", bars(day, 180), start=day, end=day + 3 * HOUR)
    # 14:35 .. 14:37: the 14:00 hour starts before the range, so no bar (as a stored 1h series reads)
    assert store.read_bars(KEY, "1h", day + 35 * MIN, day + 37 * MIN).empty
    # 14:35 .. 15:10: only the 15:00 hour, and all of it, not its first ten minutes
    part = store.read_bars(KEY, "1h", day + 35 * MIN, day + 70 * MIN)
    assert list(part.index) == [day + HOUR] and part["volume"].iloc[0] == 600.0
    # chunked reads (as the store replay makes them) give each bar once, whole
    chunks = [store.read_bars(KEY, "1h", day + (35 + 60 * i) * MIN, day + (95 + 60 * i) * MIN) for i in range(3)]
    joined = pd.concat(chunks)
    assert joined.index.is_unique and (joined["volume"] == 600.0).all()
    pd.testing.assert_frame_equal(joined, store.read_bars(KEY, "1h", day + 35 * MIN), check_freq=False)
    days = store.read_bars(KEY, "1d", day + HOUR, day + pd.Timedelta(days=2))
    assert days.empty  # the day's label (its midnight) is before the start


def test_a_series_stored_with_fewer_columns_takes_a_window_of_all_seven(store: ArcticStore) -> None:
    old = check_bars(bars(T0, 60), KEY)[["open", "high", "low", "close", "volume"]]  # as stored before wap/bar_count
    store.library("bars.1m", create=True).write(KEY, old)
    store.write_bars(KEY, "1m", bars(T0 + 10 * MIN, 10, base=200.0), start=T0 + 10 * MIN, end=T0 + 20 * MIN)
    stored = store.read_bars(KEY, "1m")
    assert len(stored) == 60 and list(stored.columns) == ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    assert stored["wap"].iloc[:10].isna().all() and (stored["bar_count"].iloc[:10] == -1).all()
    assert (stored["bar_count"].iloc[10:20] == 3).all()
