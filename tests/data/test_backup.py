"""Backups and restores of a real ArcticDB store: a verified copy, a manifest, refusals, and a restore that checks first."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.data.bars import MIN, T0, bars
from trader.data import SymbolMeta, backup_copy
from trader.data.arctic import ArcticStore
from trader.data.backup import MANIFEST, Manifest, backup, checksum, restore
from trader.data.restore import STAGING
from trader.errors import Conflict, NotFound, StorageError

DAY = pd.Timedelta(days=1)


@pytest.fixture
def store(tmp_path: Path) -> ArcticStore:
    store = ArcticStore(f"lmdb://{tmp_path / 'live'}")
    meta = SymbolMeta("AAPL.STK", source="ib", timezone="America/New_York", contract={"conId": 265598})
    store.write_bars("AAPL.STK", "1m", bars(T0, 500), start=T0, end=T0 + 500 * MIN, meta=meta)
    store.write_bars("MSFT.STK", "1m", bars(T0, 300, base=400.0), start=T0, end=T0 + 300 * MIN)
    day = T0.normalize()
    store.write_bars("AAPL.STK", "1d", bars(day, 20, step=DAY), start=day, end=day + 20 * DAY)
    store.append_ticks("AAPL.STK", pd.DataFrame({"bid": [1.0, 1.5], "last": [1.2, None]},
                                                index=pd.DatetimeIndex([T0, T0 + MIN])))
    store.put_record("universes", "tech", {"members": ["AAPL.STK", "MSFT.STK"]})
    store.snapshot("keep")
    return store


def test_a_backup_copies_every_symbol_and_writes_a_verified_manifest(store: ArcticStore, tmp_path: Path) -> None:
    manifest = backup(store, tmp_path / "backup")
    rows = {(e.library, e.symbol): e.rows for e in manifest.symbols}
    assert rows == {("bars.1d", "AAPL.STK"): 20, ("bars.1m", "AAPL.STK"): 500, ("bars.1m", "MSFT.STK"): 300,
                    ("records.universes", "tech"): 1, ("ticks", "AAPL.STK"): 2,
                    ("metadata", "bars.1m.AAPL.STK"): 1}
    written = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert written["source"] == store.uri and len(written["symbols"]) == 6
    copy = ArcticStore(f"lmdb://{tmp_path / 'backup' / 'arctic'}")
    pd.testing.assert_frame_equal(copy.read_bars("AAPL.STK", "1m"), store.read_bars("AAPL.STK", "1m"))
    assert copy.meta("AAPL.STK", "1m") == store.meta("AAPL.STK", "1m")
    assert copy.get_record("universes", "tech") == store.get_record("universes", "tech")
    assert store.snapshots() == ["keep"]  # the backup's own snapshot is gone


def test_a_backup_goes_into_a_new_or_empty_directory(store: ArcticStore, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "something").write_text("x")
    with pytest.raises(Conflict, match="not empty"):
        backup(store, tmp_path / "used")


def test_a_backup_directory_that_cannot_be_created_is_named_as_the_backup_directory(
        store: ArcticStore, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for directory in (blocker / "backup", Path("/proc/nope")):
        with pytest.raises(StorageError, match=f"cannot create the backup directory {directory}: ") as err:
            backup(store, directory)
        assert "market store" not in str(err.value)
    assert store.snapshots() == ["keep"]  # no backup snapshot taken, none left behind


def test_the_checksum_sees_one_changed_value_and_the_metadata() -> None:
    frame = bars(T0, 100)
    changed = frame.copy()
    changed.iloc[50, 0] += 0.01
    assert checksum(frame, {"key": "A"}) == checksum(frame.copy(), {"key": "A"})
    assert checksum(frame, {"key": "A"}) != checksum(changed, {"key": "A"})
    assert checksum(frame, {"key": "A"}) != checksum(frame, {"key": "B"})


def test_a_restore_verifies_copies_and_verifies_again(store: ArcticStore, tmp_path: Path) -> None:
    backup(store, tmp_path / "backup")
    fresh = ArcticStore(f"lmdb://{tmp_path / 'fresh'}")
    manifest = restore(fresh, tmp_path / "backup")
    assert manifest.rows == 824
    pd.testing.assert_frame_equal(fresh.read_bars("MSFT.STK", "1m"), store.read_bars("MSFT.STK", "1m"))
    pd.testing.assert_frame_equal(fresh.read_ticks("AAPL.STK"), store.read_ticks("AAPL.STK"))
    assert fresh.meta("AAPL.STK", "1m").contract == {"conId": 265598}


def test_a_restore_refuses_a_store_that_is_not_empty_unless_forced(store: ArcticStore, tmp_path: Path) -> None:
    backup(store, tmp_path / "backup")
    other = ArcticStore(f"lmdb://{tmp_path / 'other'}")
    other.write_bars("ES.FUT.202612", "1m", bars(T0, 10), start=T0, end=T0 + 10 * MIN)
    with pytest.raises(Conflict, match="--force"):
        restore(other, tmp_path / "backup")
    assert other.bar_symbols() == {"1m": ["ES.FUT.202612"]}  # untouched
    restore(other, tmp_path / "backup", force=True)
    assert other.bar_symbols() == {"1d": ["AAPL.STK"], "1m": ["AAPL.STK", "MSFT.STK"]}


def _staging_left(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if STAGING in p.name]


def test_a_forced_restore_swaps_in_a_verified_copy_and_leaves_nothing_beside_it(store: ArcticStore,
                                                                                tmp_path: Path) -> None:
    backup(store, tmp_path / "backup")
    parent = tmp_path / "stores"
    other = ArcticStore(f"lmdb://{parent / 'other'}")
    other.write_bars("ES.FUT.202612", "1m", bars(T0, 10), start=T0, end=T0 + 10 * MIN)
    other.write_bars("ES.FUT.202612", "5m", bars(T0, 2, step=5 * MIN), start=T0, end=T0 + 10 * MIN)
    other.snapshot("old")
    restore(other, tmp_path / "backup", force=True)
    # the same object reads the new store (it was reopened), and so does a new one
    assert other.bar_symbols() == {"1d": ["AAPL.STK"], "1m": ["AAPL.STK", "MSFT.STK"]}
    assert other.snapshots() == []  # the old store's snapshots went with it
    pd.testing.assert_frame_equal(other.read_bars("AAPL.STK", "1m"), store.read_bars("AAPL.STK", "1m"))
    other.write_bars("ES.FUT.202612", "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)  # and writes to it
    other.write_bars("ES.FUT.202612", "5m", bars(T0, 1, step=5 * MIN), start=T0, end=T0 + 5 * MIN)
    assert len(other.read_bars("ES.FUT.202612", "1m")) == 5  # (5m: a library the backup does not have)
    assert sorted(p.name for p in parent.iterdir()) == ["other"]  # no staging store, no old store left
    (parent / f".other{STAGING}20261208T000000000000").mkdir()  # left by a restore killed midway
    (parent / f".other{STAGING}20261208T000000000000" / "data.mdb").write_bytes(b"x" * 1000)
    restore(other, tmp_path / "backup", force=True)
    assert sorted(p.name for p in parent.iterdir()) == ["other"]  # the next restore deletes it


def test_a_restore_that_fails_midway_leaves_the_old_store_as_it_was(tmp_path: Path) -> None:
    big = ArcticStore(f"lmdb://{tmp_path / 'big'}")
    rows = 60_000  # ~4 MB of values: more than the target's map holds
    big.write_bars("BIG.STK", "1m", bars(T0, rows), start=T0, end=T0 + rows * MIN)
    backup(big, tmp_path / "backup")
    parent = tmp_path / "stores"
    small = ArcticStore(f"lmdb://{parent / 'small'}?map_size=1MB")
    small.write_bars("OLD.STK", "1m", bars(T0, 20), start=T0, end=T0 + 20 * MIN)
    small.put_record("universes", "mine", {"members": ["OLD.STK"]})
    with pytest.raises(StorageError, match="the store is full"):
        restore(small, tmp_path / "backup", force=True)
    assert small.bar_symbols() == {"1m": ["OLD.STK"]}  # before the staging store: dropped, then half-copied
    pd.testing.assert_frame_equal(small.read_bars("OLD.STK", "1m"), bars(T0, 20), check_freq=False)
    assert small.get_record("universes", "mine") == {"members": ["OLD.STK"]}
    assert _staging_left(parent) == []


def test_a_symbol_larger_than_a_range_is_copied_range_by_range_to_the_same_checksum(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = ArcticStore(f"lmdb://{tmp_path / 'live'}")
    live.write_bars("AAPL.STK", "1m", bars(T0, 60), start=T0, end=T0 + 60 * MIN)  # 9 ranges
    stamps = pd.DatetimeIndex([T0] * 4 + [T0 + MIN] * 5 + [T0 + 2 * MIN] * 3)  # equal times across ranges
    ticks = pd.DataFrame({"bid": [float(n) for n in range(12)], "size": list(range(12))}, index=stamps)
    live.append_ticks("AAPL.STK", ticks)
    monkeypatch.setattr(backup_copy, "CHUNK_ROWS", 7)
    manifest = backup(live, tmp_path / "backup")
    entries = {(e.library, e.symbol): e for e in manifest.symbols}
    stored = live.library("bars.1m").read("AAPL.STK")
    assert entries[("bars.1m", "AAPL.STK")].checksum == checksum(stored.data, stored.metadata)  # one definition
    ticked = live.library("ticks").read("AAPL.STK")
    assert entries[("ticks", "AAPL.STK")].checksum == checksum(ticked.data, ticked.metadata)
    fresh = ArcticStore(f"lmdb://{tmp_path / 'fresh'}")
    restore(fresh, tmp_path / "backup")
    pd.testing.assert_frame_equal(fresh.read_bars("AAPL.STK", "1m"), live.read_bars("AAPL.STK", "1m"))
    pd.testing.assert_frame_equal(fresh.read_ticks("AAPL.STK"), live.read_ticks("AAPL.STK"))


def test_a_copy_holds_one_range_in_memory_not_the_symbol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    rows = 100_000
    live = ArcticStore(f"lmdb://{tmp_path / 'live'}")
    live.write_bars("BIG.STK", "1m", bars(T0, rows), start=T0, end=T0 + rows * MIN)
    whole = int(bars(T0, rows).memory_usage(index=True).sum())  # 6.4 MB
    monkeypatch.setattr(backup_copy, "CHUNK_ROWS", 5_000)
    tracemalloc.start()
    try:
        copied = backup_copy.copy_symbols(live, ArcticStore(f"lmdb://{tmp_path / 'copy'}"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert copied[0][2] == rows
    assert peak < whole / 4, f"copying traced {peak / 1e6:.1f} MB at its peak, a whole symbol is {whole / 1e6:.1f} MB"


def test_a_damaged_backup_is_refused_before_anything_is_written(store: ArcticStore, tmp_path: Path) -> None:
    backup(store, tmp_path / "backup")
    path = tmp_path / "backup" / MANIFEST
    data = json.loads(path.read_text())
    data["symbols"][0]["rows"] += 1
    path.write_text(json.dumps(data))
    fresh = ArcticStore(f"lmdb://{tmp_path / 'fresh'}")
    with pytest.raises(StorageError, match="does not match the backup manifest: bars.1d/AAPL.STK has 20 rows, not 21"):
        restore(fresh, tmp_path / "backup")
    assert fresh.libraries() == []
    # a symbol changed behind the manifest's back: the checksum says so
    data["symbols"][0]["rows"] -= 1
    path.write_text(json.dumps(data))
    copy = ArcticStore(f"lmdb://{tmp_path / 'backup' / 'arctic'}")
    copy.write_bars("AAPL.STK", "1d", bars(T0.normalize(), 20, step=DAY, base=101.0),
                    start=T0.normalize(), end=T0.normalize() + 20 * DAY)
    with pytest.raises(StorageError, match="checksum differs"):
        restore(fresh, tmp_path / "backup")


def test_a_directory_without_a_backup_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no backup"):
        Manifest.load(tmp_path)


REWRITER = """
import sys
import pandas as pd
from tests.data.bars import bars
from trader.data.arctic import ArcticStore
store = ArcticStore("lmdb://" + sys.argv[1])
t0 = pd.Timestamp("2026-03-02 14:30", tz="UTC")
print("writing", flush=True)
for n in range(1, 400):  # the whole window again and again, each version with its own prices
    store.write_bars("BUSY.STK", "1m", bars(t0, 2000, base=100.0 + n), start=t0,
                     end=t0 + pd.Timedelta(minutes=2000))
"""


def test_a_backup_taken_while_a_writer_rewrites_a_symbol_copies_one_whole_version(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    live = tmp_path / "live"
    store = ArcticStore(f"lmdb://{live}")
    store.write_bars("BUSY.STK", "1m", bars(T0, 2000, base=100.0), start=T0, end=T0 + 2000 * MIN)
    writer = subprocess.Popen([sys.executable, "-c", REWRITER, str(live)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        manifest = backup(store, tmp_path / "backup")
    finally:
        writer.kill()
        writer.wait(10)
    copy = ArcticStore(f"lmdb://{tmp_path / 'backup' / 'arctic'}").read_bars("BUSY.STK", "1m")
    base = copy["open"].iloc[0]
    assert len(copy) == 2000 and manifest.symbols[0].rows == 2000
    pd.testing.assert_frame_equal(copy, bars(T0, 2000, base=base), check_freq=False)  # one version, whole


RESTORER = """
import sys
from trader.data import backup_copy
from trader.data.arctic import ArcticStore
from trader.data.backup import restore
backup_copy.CHUNK_ROWS = 250  # 200 ranges: slow enough to be killed midway
restore(ArcticStore("lmdb://" + sys.argv[1]), sys.argv[2], force=True)
"""


def test_a_restore_killed_midway_leaves_the_old_store_and_the_next_one_cleans_up(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    big = ArcticStore(f"lmdb://{tmp_path / 'big'}")
    big.write_bars("BIG.STK", "1m", bars(T0, 50_000), start=T0, end=T0 + 50_000 * MIN)
    backup(big, tmp_path / "backup")
    parent = tmp_path / "stores"
    live = ArcticStore(f"lmdb://{parent / 'live'}")
    live.write_bars("OLD.STK", "1m", bars(T0, 20), start=T0, end=T0 + 20 * MIN)
    child = subprocess.Popen([sys.executable, "-c", RESTORER, str(parent / "live"), str(tmp_path / "backup")],
                             env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        deadline = time.monotonic() + 60
        while not any((left / ".locks" / "bars.1m").exists() for left in parent.glob(f".live{STAGING}*")):
            assert child.poll() is None and time.monotonic() < deadline, "the restore ended before it was killed"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert live.bar_symbols() == {"1m": ["OLD.STK"]}
    pd.testing.assert_frame_equal(live.read_bars("OLD.STK", "1m"), bars(T0, 20), check_freq=False)
    assert _staging_left(parent)  # the killed restore's copy
    restore(live, tmp_path / "backup", force=True)
    assert live.bar_symbols() == {"1m": ["BIG.STK"]} and _staging_left(parent) == []
