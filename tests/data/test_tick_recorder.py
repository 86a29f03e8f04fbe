"""The tick recorder on a real bus into a real ArcticDB: full rate, order, SIGTERM flush, kill -9 count, bad input.

The first tests run trader.data.recorder's ``TickRecorder`` in the test's
loop on a bus proxy, with the publisher a process of its own sending as fast
as it can (bench.store_recorder's ``publish``: the same the benchmark
measures); the last run ``python -m services.tick_recorder`` as pycron does,
SIGTERMed and SIGKILLed.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zmq

from bench.store_recorder import BASE, KEYS, WARM, publish, tick
from tests.conftest import StackEnv, TradingStack, call
from tests.waiting import wait_until, wait_until_blocking
from trader.data import recorder as recorder_module
from trader.data import recorder_writer
from trader.data.arctic import ArcticStore
from trader.data.frames import TICK_COLUMNS
from trader.data.recorder import TickRecorder
from trader.data.recorder_counts import RecorderCounts
from trader.data.store import SymbolMeta
from trader.messaging import codec
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Publisher


@pytest.fixture(autouse=True)
def fresh_log_throttle() -> None:
    """Let each test's first malformed-message line through, whatever an earlier test logged."""
    recorder_module._throttle.reset()
    recorder_writer._throttle.reset()


@pytest.fixture
def bus() -> Iterator[BusProxy]:
    """A running bus proxy on ephemeral loopback ports."""
    proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    proxy.start()
    yield proxy
    proxy.stop()


def expected_bids(count: int, key_index: int, keys: int = len(KEYS)) -> np.ndarray:
    """Return the bids (= sequence numbers) of the ticks ``publish`` sends for ``KEYS[key_index]``."""
    return np.arange(key_index, count, keys, dtype="float64")


async def warm_up(recorder: TickRecorder, send: Callable[[], None], timeout: float = 10.0) -> int:
    """Send warm-up ticks until the recorder has one (the subscription reached the publisher); return the count."""
    loop_until = asyncio.get_running_loop().time() + timeout
    while recorder.counts.received == 0:
        assert asyncio.get_running_loop().time() < loop_until, "the recorder never got a warm-up tick"
        send()
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # any warm-up tick still in flight lands
    return recorder.counts.received


# -- the recorder in-process, the publisher a process at its full rate --------------------------
def test_ticks_of_several_keys_at_full_rate_are_all_stored_in_order(bus: BusProxy, tmp_path: Path) -> None:
    count = 30_000
    store = ArcticStore(f"lmdb://{tmp_path}/arctic")

    async def scenario() -> dict[str, Any]:
        recorder = TickRecorder(store, RecorderCounts(tmp_path / "counts"), batch_rows=4_000, batch_seconds=0.2)
        recorder.listen(bus.sub_endpoint, ["tick"])
        ctx = mp.get_context("spawn")
        go, warmed, fire = ctx.Event(), ctx.Event(), ctx.Event()
        proc = ctx.Process(target=publish, args=(bus.pub_endpoint, count, go, warmed, fire))
        proc.start()
        try:
            await wait_until(lambda: recorder.counts.received > 0, 30, "a warm-up tick")
            go.set()
            await asyncio.to_thread(warmed.wait, 10)
            await asyncio.sleep(0.1)
            base = recorder.counts.received
            fire.set()
            await wait_until(lambda: recorder.counts.written == base + count, 60, f"{count} ticks stored")
            return recorder.status()
        finally:
            await recorder.close()
            await asyncio.to_thread(proc.join, 10)

    status = asyncio.run(scenario())
    # Several writes (fewer than count / batch_rows when the writer lagged: the open batch grew meanwhile).
    assert status["malformed"] == 0 and status["discarded"] == 0 and status["batches"] >= 2
    assert sorted(store.tick_symbols()) == sorted([*KEYS, WARM])
    assert store.meta(KEYS[0], "ticks") == SymbolMeta(KEYS[0], source="recorder", timezone="America/New_York")
    for i, key in enumerate(KEYS):
        ticks = store.read_ticks(key)
        bids = expected_bids(count, i)
        assert len(ticks) == len(bids), key  # none lost, none doubled
        np.testing.assert_array_equal(ticks["bid"].to_numpy(), bids)  # in the order published
        assert list(ticks.columns) == list(TICK_COLUMNS)
        assert ticks.index[0] == pd.Timestamp(BASE + timedelta(microseconds=i))
        assert ticks.index.is_monotonic_increasing and str(ticks.index.tz) == "UTC"
        assert ticks["last"].isna().all() and (ticks["ask"] - ticks["bid"] == 0.5).all()
        meta = store.meta(key, "ticks")  # where the ticks came from, for history read/summary
        assert (meta.key, meta.source, meta.timezone) == (key, "recorder", "America/New_York")


def test_a_malformed_message_is_logged_and_skipped_and_recording_goes_on(
        bus: BusProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ArcticStore(f"lmdb://{tmp_path}/arctic")
    key = "AAPL.STK"
    topic = f"tick.ib.{key}".encode()
    good = tick(key, 1)
    garbage = [
        topic + b"\x00\xc1",  # not msgpack
        topic,  # no payload at all
        topic + b"\x00" + codec.encode("hello"),  # not a tick
        topic + b"\x00" + codec.encode({**good, "instrument": "MSFT.STK"}),  # another instrument's tick
        topic + b"\x00" + codec.encode({**good, "time": "yesterday"}),  # a time that is not one
        topic + b"\x00" + codec.encode({**good, "bid": "189.5"}),  # a price that is not a number
        b"tick.ib\x00" + codec.encode(good),  # a topic without a key
    ]

    async def scenario() -> dict[str, Any]:
        recorder = TickRecorder(store, RecorderCounts(tmp_path / "counts"), batch_rows=1_000, batch_seconds=0.1)
        recorder.listen(bus.sub_endpoint, ["tick"])
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
        sock.connect(bus.pub_endpoint)
        try:
            warm = await warm_up(recorder, lambda: sock.send(b"tick.ib.WARM.STK\x00" + codec.encode(tick(WARM, 0))))
            sock.send(topic + b"\x00" + codec.encode(tick(key, 1)))
            for frame in garbage:
                sock.send(frame)
            sock.send(topic + b"\x00" + codec.encode(tick(key, 2)))
            await wait_until(lambda: recorder.counts.written == warm + 2, 10, "the good ticks stored")
            return recorder.status()
        finally:
            sock.close(linger=0)
            await recorder.close()

    with caplog.at_level("WARNING", logger="trader.data.recorder"):
        status = asyncio.run(scenario())
    assert status["malformed"] == len(garbage)
    assert status["pending"] == 0 and status["received"] == status["written"] + 5  # 5 payloads skipped on the writer
    assert list(store.read_ticks(key)["bid"]) == [1.0, 2.0]
    lines = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(lines) == len(garbage), lines
    assert any("instrument 'MSFT.STK'" in line for line in lines) and any("undecodable" in line for line in lines)


def test_malformed_payloads_are_not_counted_lost_and_a_counts_file_of_three_counters_is_read(tmp_path: Path) -> None:
    old = tmp_path / "old.counts"  # written before the malformed counter: magic, received, written, discarded
    old.write_bytes(b"TICKREC1" + (10).to_bytes(8, "little") + (6).to_bytes(8, "little") + (1).to_bytes(8, "little"))
    assert RecorderCounts(old).previous_lost == 3
    counts = RecorderCounts(tmp_path / "counts")
    counts.slots[1] += 10  # received
    counts.add_written(6)
    counts.add_malformed(4)
    assert counts.pending == 0 and counts.malformed == 4
    counts.close()
    assert RecorderCounts(tmp_path / "counts").previous_lost == 0


def test_ticks_older_than_the_stored_ones_are_discarded_and_counted(bus: BusProxy, tmp_path: Path) -> None:
    store = ArcticStore(f"lmdb://{tmp_path}/arctic")
    key = "ES.FUT.202612"
    stored = pd.DataFrame({"bid": [100.0]}, index=pd.DatetimeIndex([BASE + timedelta(seconds=10)], name="time"))
    store.append_ticks(key, stored)
    pub = Publisher(bus.pub_endpoint)

    async def scenario() -> dict[str, Any]:
        # batches of 3 (half of batch_rows): the warm-up tick, 20 and 5, then 8 alone 5 s later
        recorder = TickRecorder(store, RecorderCounts(tmp_path / "counts"), batch_rows=6, batch_seconds=5)
        recorder.listen(bus.sub_endpoint, ["tick"])
        try:
            warm = await warm_up(recorder, lambda: pub.publish(f"tick.ib.{WARM}", tick(WARM, 0)))
            for seconds in (20, 5, 8):  # two before the stored tick: out of order, and older than the store
                pub.publish(f"tick.ib.{key}", {**tick(key, seconds), "time": BASE + timedelta(seconds=seconds)})
            await wait_until(lambda: recorder.counts.written + recorder.counts.discarded == warm + 3, 10, "written")
            return recorder.status()
        finally:
            await recorder.close()
            pub.close()

    status = asyncio.run(scenario())
    assert status["discarded"] == 2 and status["reordered"] > 0 and status["pending"] == 0
    assert list(store.read_ticks(key)["bid"]) == [100.0, 20.0]


def test_a_full_store_keeps_the_ticks_retries_and_says_how_many_it_could_not_store(
        bus: BusProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A real full store: ArcticDB's LMDB with a 1 MB map refuses a write once the map is full.
    store = ArcticStore(f"lmdb://{tmp_path}/arctic?map_size=1MB")
    pub = Publisher(bus.pub_endpoint)

    def failures() -> int:
        return sum("not stored yet" in r.getMessage() for r in caplog.records)

    async def scenario() -> dict[str, Any]:
        recorder = TickRecorder(store, RecorderCounts(tmp_path / "counts"), batch_rows=2_000, batch_seconds=0.2)
        recorder.listen(bus.sub_endpoint, ["tick"])
        try:
            await warm_up(recorder, lambda: pub.publish(f"tick.ib.{WARM}", tick(WARM, 0)))
            noise = np.random.default_rng(17).random((40_000, 3)).tolist()  # what LZ4 cannot shrink
            for i, (bid, ask, volume) in enumerate(noise):
                key = KEYS[i % 3]
                pub.publish(f"tick.ib.{key}", {**tick(key, i), "bid": bid, "ask": ask, "volume": volume})
            await wait_until(lambda: failures() >= 2, 20, "a refused write tried again")
            await wait_until(lambda: recorder.behind, 20, "the bus held back")
            await asyncio.sleep(0.5)
            return recorder.status()
        finally:
            await recorder.close(attempts=1)
            pub.close()

    with caplog.at_level("INFO", logger="trader.data.recorder"):
        status = asyncio.run(scenario())
    assert "full" in status["last_error"]  # the store says it is full (words of trader/data/arctic.py)
    # Nothing dropped while the store refused: every tick received is written or still held, and
    # no more than batch_rows are held: the rest waits in ZeroMQ's queue, the bus not read meanwhile.
    assert status["pending"] == status["received"] - status["written"] > 0 and status["discarded"] == 0
    assert status["pending"] <= 2_000 and status["behind"] and status["received"] < 40_000
    counts = RecorderCounts(tmp_path / "counts")  # what the next start reports
    lost = counts.previous_lost
    assert lost > 0 and sum(len(store.read_ticks(k)) for k in store.tick_symbols()) == counts.previous_received - lost
    assert any(f"{lost} ticks could not be stored before stopping: lost" in r.getMessage() for r in caplog.records)


# -- the service as pycron runs it ----------------------------------------------------------
@pytest.fixture
def recorder_stack(stack_env: StackEnv, free_port: Callable[[], int]) -> Iterator[TradingStack]:
    """The bus and tick_recorder processes; at most 1,000 ticks unstored, batches written only at 500 (never by time)."""
    rpc_port = free_port()
    stack_env.env.update({"TRADER_SERVICES__TICK_RECORDER__RPC_PORT": str(rpc_port),
                          "TRADER_RECORDER__BATCH_ROWS": "1000", "TRADER_RECORDER__BATCH_SECONDS": "600"})
    stack = TradingStack(stack_env)
    stack.recorder_endpoint = f"tcp://127.0.0.1:{rpc_port}"  # type: ignore[attr-defined]
    try:
        stack.start("bus")
        start_recorder(stack)
        yield stack
    finally:
        for name in list(stack.procs):
            stack.kill(name)


def start_recorder(stack: TradingStack) -> dict[str, Any]:
    """Start tick_recorder and wait until it is RUNNING; return its status."""
    stack.start("tick_recorder")
    return stack.wait_ready(stack.recorder_endpoint, "tick_recorder", 30)  # type: ignore[attr-defined]


def recorder_status(stack: TradingStack) -> dict[str, Any]:
    return call(stack.recorder_endpoint, "status", timeout=5)  # type: ignore[attr-defined]


def publish_ticks(stack: TradingStack, count: int, start: int = 0, chunk: int = 500) -> int:
    """Warm up, publish ticks ``start`` .. ``start + count`` over three keys; return the ticks received in all.

    They go out ``chunk`` at a time at full rate, each chunk received and the writer idle before the
    next: the writer keeps up, so each batch it is handed holds exactly half of ``batch_rows`` ticks.
    """
    pub = Publisher(f"tcp://127.0.0.1:{stack.env.pub_port}")

    def settled(total: int) -> bool:
        status = recorder_status(stack)
        return status["received"] == total and not status["writing"]

    try:
        warm = 0
        while recorder_status(stack)["received"] == 0:
            assert warm < 500, "tick_recorder never got a warm-up tick"
            pub.publish(f"tick.ib.{WARM}", tick(WARM, start + warm))
            warm += 1
            time.sleep(0.02)
        time.sleep(0.2)  # any warm-up tick still in flight lands
        total = recorder_status(stack)["received"]
        for first in range(start, start + count, chunk):
            sent = range(first, min(first + chunk, start + count))
            for i in sent:
                key = KEYS[i % 3]
                pub.publish(f"tick.ib.{key}", tick(key, i))
            total += len(sent)
            wait_until_blocking(partial(settled, total), 20, f"{total} ticks received, the writer idle")
    finally:
        pub.close()
    return total


def stored(stack: TradingStack) -> dict[str, int]:
    store = ArcticStore(f"lmdb://{stack.env.home}/data/arctic")
    return {key: len(store.read_ticks(key)) for key in store.tick_symbols()}


def test_sigterm_writes_the_open_batch_then_exits_0(recorder_stack: TradingStack) -> None:
    total = publish_ticks(recorder_stack, 2_500)  # five batches of 500 written, the warm-up's remainder open
    status = recorder_status(recorder_stack)
    assert 0 < status["pending"] < 1_000, str(status)
    proc: subprocess.Popen[bytes] = recorder_stack.procs.pop("tick_recorder")  # type: ignore[assignment]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    counts = stored(recorder_stack)
    assert sum(counts.values()) == total
    assert [counts[key] for key in KEYS[:3]] == [len(range(i, 2_500, 3)) for i in range(3)]
    log = (recorder_stack.env.home / "logs" / "tick_recorder.log").read_text()
    assert f"{total} ticks received, {total} written" in log


def test_kill_9_loses_at_most_the_open_batch_and_the_next_start_logs_the_count(
        recorder_stack: TradingStack) -> None:
    total = publish_ticks(recorder_stack, 3_500)
    status = recorder_status(recorder_stack)
    lost = status["pending"]
    assert status["written"] + lost == total and 0 < lost < 1_000  # at most one batch is not in the store
    recorder_stack.kill("tick_recorder")
    assert sum(stored(recorder_stack).values()) == total - lost

    again = start_recorder(recorder_stack)
    assert again["previous_lost"] == lost and again["received"] == 0
    log = (recorder_stack.env.home / "logs" / "tick_recorder.log").read_text()
    assert f"the previous run lost {lost} ticks of the {total} it received" in log
    # Recording goes on: later ticks are appended after the stored ones.
    publish_ticks(recorder_stack, 1_000, start=10_000)
    wait_until_blocking(lambda: recorder_status(recorder_stack)["batches"] >= 1, 10, "a batch written")
    assert recorder_status(recorder_stack)["last_error"] is None


def test_kill_9_at_full_rate_mid_write_loses_at_most_one_batch(recorder_stack: TradingStack) -> None:
    # 40 keys: each write is 40 appends, so the writer falls behind a publisher sending flat out
    keys = [f"K{i:02d}.STK" for i in range(40)]
    pub = Publisher(f"tcp://127.0.0.1:{recorder_stack.env.pub_port}")
    try:
        warm = 0
        while recorder_status(recorder_stack)["received"] == 0:
            assert warm < 500, "tick_recorder never got a warm-up tick"
            pub.publish(f"tick.ib.{WARM}", tick(WARM, warm))
            warm += 1
            time.sleep(0.02)
        for i in range(60_000):  # at full rate, nothing waited for
            key = keys[i % len(keys)]
            pub.publish(f"tick.ib.{key}", tick(key, i))

        def mid_write() -> bool:  # three batches in: each write is 40 appends, seconds on a loaded machine
            status = recorder_status(recorder_stack)
            return status["writing"] and status["received"] > 3_000

        wait_until_blocking(mid_write, 60, "the writer busy with more than 3,000 ticks received")
        recorder_stack.kill("tick_recorder")
    finally:
        pub.close()
    in_store = sum(stored(recorder_stack).values())
    again = start_recorder(recorder_stack)
    lost = again["previous_lost"]
    log = (recorder_stack.env.home / "logs" / "tick_recorder.log").read_text()
    received = int(log.split(f"the previous run lost {lost} ticks of the ")[1].split()[0]) if lost else in_store
    # what was taken off the bus is stored or counted as lost; a kill between a key's append and its
    # count overstates the loss by that key's rows, never understates it
    assert received - lost <= in_store <= received
    assert 0 < lost <= 1_000, f"{lost} ticks lost: more than one batch (batch_rows 1,000)"
