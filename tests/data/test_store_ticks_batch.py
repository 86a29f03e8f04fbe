"""Several keys' ticks in one store call, on a real ArcticDB (LMDB in tmp): as per-key appends, refusals per key.

The store's ``append_ticks_many`` against ``append_ticks`` key by key, and
the recorder's :class:`~trader.data.recorder_writer.TickWriter`, which writes
a batch's keys in that one call and hands back only the keys refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.store_recorder import BASE, tick
from trader.data.arctic import PRUNE_EVERY, ArcticStore
from trader.data.recorder_counts import RecorderCounts
from trader.data.recorder_decode import Batch
from trader.data.recorder_writer import TickWriter
from trader.data.store import SymbolMeta
from trader.errors import StorageError, ValidationError
from trader.messaging import codec

T0 = pd.Timestamp(BASE)
KEYS = ("AAA.STK", "BBB.STK", "CCC.STK")


def ticks(first: int, rows: int, *, tz: bool = True) -> pd.DataFrame:
    """Return ``rows`` ticks one millisecond apart from ``first`` ms after T0 (bid = their number)."""
    index = pd.DatetimeIndex([T0 + pd.Timedelta(milliseconds=first + i) for i in range(rows)], name="time")
    return pd.DataFrame({"bid": np.arange(first, first + rows, dtype="float64"), "ask": first + 0.5},
                        index=index if tz else index.tz_localize(None))


def versions(store: ArcticStore, key: str) -> list[int]:
    return sorted(v.version for v in store.library("ticks").list_versions(key))


def test_a_batch_append_stores_what_per_key_appends_store(tmp_path: Path) -> None:
    one, many = ArcticStore(f"lmdb://{tmp_path}/one"), ArcticStore(f"lmdb://{tmp_path}/many")
    for n in range(2 * PRUNE_EVERY + 3):  # enough rounds to prune; CCC in every third only: its versions lag
        frames = {key: ticks(1000 * n + 10 * i, 3 + i, tz=n % 2 == 0) for i, key in enumerate(KEYS)
                  if key != "CCC.STK" or n % 3 == 0}
        frames["DDD.STK"] = ticks(0, 0)  # nothing: nothing written
        metas = {key: SymbolMeta(key, source="recorder", extra={"round": n}) for key in frames} if n < 4 else None
        for key, frame in frames.items():
            assert one.append_ticks(key, frame, meta=(metas or {}).get(key)) == len(frame)
        assert many.append_ticks_many(frames, metas=metas) == {key: len(f) for key, f in frames.items()}
    assert one.tick_symbols() == many.tick_symbols() == list(KEYS)
    for key in KEYS:
        pd.testing.assert_frame_equal(one.read_ticks(key), many.read_ticks(key))
        assert versions(one, key) == versions(many, key)  # the same versions, pruned alike
        assert len(versions(many, key)) <= PRUNE_EVERY
        assert one.meta(key, "ticks") == many.meta(key, "ticks") == SymbolMeta(key, source="recorder",
                                                                               extra={"round": 3})
    assert versions(many, "AAA.STK")[-1] == 2 * PRUNE_EVERY + 2 and versions(many, "CCC.STK")[-1] == 6


def test_a_refused_key_gets_its_error_and_the_others_are_written(tmp_path: Path) -> None:
    store = ArcticStore(f"lmdb://{tmp_path}/arctic")
    # BBB stored in another shape (an int column alone): ArcticDB refuses an append of the tick columns to it
    store.library("ticks", create=True).write("BBB.STK", pd.DataFrame(
        {"bid": [1]}, index=pd.DatetimeIndex([T0 - pd.Timedelta(days=1)], name="time")))
    backwards = ticks(0, 3).iloc[::-1]
    result = store.append_ticks_many({"AAA.STK": ticks(0, 3), "BBB.STK": ticks(0, 4), "CCC.STK": ticks(0, 5),
                                      "ZZZ.STK": backwards})
    assert result["AAA.STK"] == 3 and result["CCC.STK"] == 5
    refused, invalid = result["BBB.STK"], result["ZZZ.STK"]
    assert isinstance(refused, StorageError) and "BBB.STK: cannot append 4 ticks" in str(refused)
    assert refused.details["key"] == "BBB.STK"
    assert isinstance(invalid, ValidationError) and "not in time order" in str(invalid)
    assert store.read_ticks("AAA.STK")["bid"].tolist() == [0.0, 1.0, 2.0]
    assert len(store.read_ticks("CCC.STK")) == 5 and len(store.library("ticks").read("BBB.STK").data) == 1
    assert "ZZZ.STK" not in store.tick_symbols()


def test_a_batch_append_waits_for_a_key_s_lock_held_by_another_process(tmp_path: Path) -> None:
    store = ArcticStore(f"lmdb://{tmp_path}/arctic")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from trader.data.locks import SymbolLocks
        with SymbolLocks(Path({str(tmp_path / 'arctic')!r})).hold("ticks", "BBB.STK"):
            print("held", flush=True)
            time.sleep(1.5)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert store.append_ticks_many({"AAA.STK": ticks(0, 2), "BBB.STK": ticks(0, 2)}) == {
            "AAA.STK": 2, "BBB.STK": 2}
        assert time.monotonic() - started > 0.5  # it waited for the other writer of BBB
    finally:
        holder.wait(10)


def payloads(key: str, first: int, count: int) -> list[bytes]:
    """Return ``count`` ticks of ``key`` as the bus carries them (bid = their number, a microsecond apart)."""
    return [codec.encode({**tick(key, seq), "time": BASE + timedelta(microseconds=seq)})
            for seq in range(first, first + count)]


def test_the_writer_hands_back_only_the_refused_key_and_counts_the_others_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ArcticStore(f"lmdb://{tmp_path}/arctic")
    store.library("ticks", create=True).write("BBB.STK", pd.DataFrame(  # a shape the tick columns cannot append to
        {"bid": [1]}, index=pd.DatetimeIndex([T0 - pd.Timedelta(days=1)], name="time")))
    counts = RecorderCounts(tmp_path / "counts")
    writer = TickWriter(store, counts, retry_seconds=1.0)
    batch = Batch()
    batch.keys = {"BBB.STK": [*payloads("BBB.STK", 0, 30), b"\xc1 not a tick"],  # the refused key first
                  "AAA.STK": payloads("AAA.STK", 0, 20), "CCC.STK": payloads("CCC.STK", 5, 10)}
    batch.size = counts.slots[1] = 61  # received
    left = writer.write(batch)
    assert left is not None and list(left.keys) == ["BBB.STK"] and left.size == len(left.keys["BBB.STK"]) == 30
    assert (counts.written, counts.malformed, counts.discarded, counts.pending) == (30, 1, 0, 30)
    assert writer.last_error is not None and "BBB.STK" in writer.last_error and writer.batches == 0
    assert any("30 ticks of 1 keys not stored yet" in r.getMessage() for r in caplog.records)
    store.library("ticks").delete("BBB.STK")  # the store takes it now
    more = payloads("AAA.STK", 20, 5)
    left.keys["AAA.STK"] = more  # a later batch's ticks put behind it, as the recorder does
    left.size += len(more)
    counts.slots[1] += len(more)
    assert writer.write(left) is None and left.size == 0 and not left.keys
    assert (counts.written, counts.malformed, counts.discarded, counts.pending) == (65, 1, 0, 0)
    assert writer.last_error is None and writer.batches == 1
    assert store.read_ticks("BBB.STK")["bid"].tolist() == list(map(float, range(30)))  # once each, in order
    assert store.read_ticks("AAA.STK")["bid"].tolist() == list(map(float, range(25)))
    assert store.read_ticks("CCC.STK")["bid"].tolist() == list(map(float, range(5, 15)))
    assert store.meta("BBB.STK", "ticks").source == "recorder"
    counts.close()
