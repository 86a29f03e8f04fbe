"""Tick recorder benchmark: the recorder against a raw bus subscriber, at the publisher's full rate.

Run: ``.venv/bin/python -m bench.store_recorder`` (``--quick`` for a short smoke run);
``bench/store.py`` prints these figures too, after its own (``measure()``).

The bus proxy runs as a process of its own, as in production, and so does
the publisher: the platform's ``Publisher`` sending N ticks of ten keys as
trader_service does (a dict keyed like ``Tick``, topic ``tick.ib.<key>``)
as fast as it can, with nothing between sends. Two receivers take turns:

1. raw: a pyzmq SUB socket (no high-water mark) on the bus, blocking
   ``recv`` and ``msgpack.unpackb`` per message, in a tight loop; done at the
   last tick received;
2. recorder: trader.data.recorder's ``TickRecorder`` as tick_recorder runs
   it (the settings' ``recorder.batch_rows``/``batch_seconds``), writing into
   a real ArcticDB (LMDB) in a temporary directory; done when the last tick
   received is stored (``close()``: the open batch written, not left to its
   timer).

Each side's rate is N (500,000 by default: the recorder's last write, up
to a batch written after the last tick arrives, weighs in a burst of 200,000
a fifth of the time, which no long run sees) over the time from the
publisher's first send to its end; ``recorder_vs_raw`` is the ratio of the median rounds' rates, and
``recorder_lost`` the most ticks the recorder failed to store in any round
(published minus stored). Before the burst the publisher sends a warm-up
tick every 20 ms until the receiver has one (ZeroMQ's slow joiner: a
publisher drops what it sends before the subscription reaches it); warm-up
ticks are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import zmq

from bench.bus import run_proxy
from bench.measure import free_port
from trader.config import load_settings
from trader.data.arctic import ArcticStore
from trader.data.recorder import TickRecorder
from trader.data.recorder_counts import RecorderCounts
from trader.messaging.pubsub import Publisher

KEYS = tuple(f"S{i:02d}.STK" for i in range(10))
WARM = "WARM.STK"
BASE = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def tick(key: str, seq: int) -> dict[str, Any]:
    """Return tick number ``seq`` as trader_service publishes it: its bid is ``seq``, its time BASE + seq us."""
    return {"instrument": key, "time": BASE + timedelta(microseconds=seq), "bid": float(seq), "ask": float(seq) + 0.5,
            "last": None, "bid_size": 100.0, "ask_size": 200.0, "last_size": None, "volume": float(seq)}


def publish(endpoint: str, count: int, go: Any, warmed: Any, fire: Any, keys: tuple[str, ...] = KEYS) -> None:
    """Send warm-up ticks until ``go``, set ``warmed``; on ``fire`` send ``count`` ticks round-robin over ``keys``.

    Tick ``i`` (from 0) is ``tick(keys[i % len(keys)], i)``; run in a process of its own.
    """
    pub = Publisher(endpoint)
    warm = 0
    while not go.is_set():
        pub.publish(f"tick.ib.{WARM}", tick(WARM, warm - 1_000_000))
        warm += 1
        time.sleep(0.02)
    warmed.set()
    fire.wait(30)
    topics = [f"tick.ib.{key}" for key in keys]
    n = len(keys)
    for i in range(count):
        pub.publish(topics[i % n], tick(keys[i % n], i))
    pub.close()


class Bus:
    """A bus proxy process on free ports, and a publisher process for each round."""

    def __init__(self) -> None:
        self.pub_port, self.sub_port = free_port(), free_port()
        self._stop = mp.Event()
        self._proc = mp.Process(target=run_proxy, args=(self.pub_port, self.sub_port, self._stop))
        self._proc.start()

    @property
    def sub_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.sub_port}"

    def publisher(self, count: int) -> tuple[mp.Process, Any, Any, Any]:
        """Start a publisher of ``count`` ticks; return it and its (go, warmed, fire) events."""
        go, warmed, fire = mp.Event(), mp.Event(), mp.Event()
        proc = mp.Process(target=publish, args=(f"tcp://127.0.0.1:{self.pub_port}", count, go, warmed, fire))
        proc.start()
        return proc, go, warmed, fire

    def close(self) -> None:
        self._stop.set()
        self._proc.join(10)


def raw_round(bus: Bus, count: int) -> tuple[float, int]:
    """Return (ticks/s, ticks received) for a raw SUB: blocking recv and msgpack unpack of each tick."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, 3000)
    sock.setsockopt(zmq.SUBSCRIBE, b"tick.")
    sock.connect(bus.sub_endpoint)
    proc, go, warmed, fire = bus.publisher(count)
    warm_prefix = f"tick.ib.{WARM}\x00".encode()
    received, started, last = 0, 0.0, 0.0
    try:
        while True:
            try:
                data = sock.recv()
            except zmq.Again:
                if go.is_set():
                    break  # the burst ended short: what is missing was lost
                continue
            if data.startswith(warm_prefix):
                if not go.is_set():
                    go.set()
                    warmed.wait(10)
                    time.sleep(0.1)  # the last warm-up tick lands
                    started = time.perf_counter()
                    fire.set()
                continue
            msgpack.unpackb(data[data.find(b"\x00") + 1:])
            received += 1
            last = time.perf_counter()
            if received == count:
                break
    finally:
        sock.close(linger=0)
        proc.join(30)
    return count / (last - started), received


def recorder_round(bus: Bus, count: int, directory: Path) -> tuple[float, int]:
    """Return (ticks/s received and stored, ticks stored) for the recorder writing to ArcticDB in ``directory``."""
    opts = load_settings().recorder

    async def run() -> tuple[float, int]:
        recorder = TickRecorder(ArcticStore(f"lmdb://{directory}/arctic"), RecorderCounts(directory / "counts"),
                                batch_rows=opts.batch_rows, batch_seconds=opts.batch_seconds)
        recorder.listen(bus.sub_endpoint, ["tick"])
        counts = recorder.counts
        proc, go, warmed, fire = bus.publisher(count)
        try:
            while counts.received == 0:
                await asyncio.sleep(0.005)
            go.set()
            await asyncio.to_thread(warmed.wait, 10)
            await asyncio.sleep(0.1)  # the last warm-up tick lands
            base = counts.received
            started = time.perf_counter()
            fire.set()
            seen, quiet = -1, time.perf_counter()
            while counts.received < base + count:
                await asyncio.sleep(0.002)
                if counts.received != seen:
                    seen, quiet = counts.received, time.perf_counter()
                elif time.perf_counter() - quiet > 3.0:
                    break  # the burst ended short: what is missing was lost
            await recorder.close()
            elapsed = time.perf_counter() - started
            return count / elapsed, counts.written - base
        finally:
            await asyncio.to_thread(proc.join, 30)

    return asyncio.run(run())


def measure(count: int = 500_000, rounds: int = 3) -> list[tuple[str, float, str]]:
    """Return ``[("recorder_vs_raw", ratio, ">= 0.8"), ("recorder_lost", ticks, "<= 0")]`` over ``rounds`` rounds."""
    mp.set_start_method("spawn", force=True)
    raw_rates, rec_rates, lost = [], [], []
    bus = Bus()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
            for r in range(rounds):
                raw_rates.append(raw_round(bus, count)[0])
                rate, stored = recorder_round(bus, count, Path(tmp) / f"round{r}")
                rec_rates.append(rate)
                lost.append(count - stored)
    finally:
        bus.close()
    raw, rec = statistics.median(raw_rates), statistics.median(rec_rates)
    print(f"recorder: raw SUB {raw:,.0f} ticks/s, recorder into ArcticDB {rec:,.0f} ticks/s "
          f"({count:,} ticks of {len(KEYS)} keys, {rounds} round(s), medians)")
    return [("recorder_vs_raw", round(rec / raw, 2), ">= 0.8"), ("recorder_lost", float(max(lost)), "<= 0")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=500_000)
    args = parser.parse_args(argv)
    count, rounds = (20_000, 1) if args.quick else (args.ticks, args.rounds)
    for name, value, target in measure(count, rounds):
        print(f"{name}: {value:g} (target {target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
