"""The bus's consumers under a flood from any local publisher: pycron's heartbeat monitor and the tick feed.

A raw ZeroMQ PUB socket on 127.0.0.1 sends what the probe sent (issue 15):
malformed heartbeats (some of a megabyte), heartbeats under thousands of
invented service names, forged heartbeats of a supervised job, absurd ticks.
Bounded: a few thousand frames, seconds. The consumers keep serving, count
what they drop, log a bounded amount and hold a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime

import pytest
import zmq
from reactivex.scheduler.eventloop import AsyncIOScheduler

from pycron.health import UNSUPERVISED, HeartbeatMonitor
from tests.waiting import wait_until
from trader.domain import Tick
from trader.messaging import codec
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Message, Publisher, Subscriber
from trader.strategy.feed import TickFeed

KEY = "AAPL.STK"
INVENTED = 1024  # heartbeats under made-up service names: counted, none kept


def frame(topic: str, payload: object) -> bytes:
    return topic.encode() + b"\x00" + codec.encode(payload)


def beat(service: str, pid: object, state: str = "RUNNING") -> dict[str, object]:
    return {"service": service, "state": state, "pid": pid, "time": datetime.now(UTC), "uptime": 1.0}


def test_a_flood_of_bad_heartbeats_and_ticks_is_dropped_counted_and_logged_briefly(
    bus: BusProxy, zctx: zmq.Context, caplog: pytest.LogCaptureFixture
) -> None:
    supervised_pid = 4242
    flood: list[bytes] = []
    rng = random.Random(15)
    for n in range(10):
        flood.append(frame("heartbeat.svc", "x" * 1_000_000))  # malformed, a megabyte each
    for n in range(INVENTED):
        flood.append(frame(f"heartbeat.invented{n}", beat(f"invented{n}", n)))
    for _ in range(500):
        flood.append(frame("heartbeat.svc", beat("svc", rng.randrange(2, 2**22), rng.choice(["DEGRADED", "RUNNING"]))))
    now = datetime.now(UTC)
    for price in (1e308, 5e-324, float("nan"), -1.0, 0.0) * 100:
        flood.append(frame(f"tick.ib.{KEY}", {"instrument": KEY, "time": now, "bid": price, "ask": price,
                                              "last": price, "bid_size": 1.0, "ask_size": 1.0, "last_size": 1.0,
                                              "volume": 10.0}))
    for _ in range(500):
        flood.append(frame(f"tick.ib.{KEY}", rng.choice(["garbage", 1, None, [1, 2], {"last": "x"}])))

    async def scenario() -> None:
        monitor = HeartbeatMonitor(bus.sub_endpoint)
        monitor.expect("svc", lambda: supervised_pid)
        monitor.expect("probe", lambda: 1)
        monitor.start()
        sub = Subscriber(bus.sub_endpoint)
        sub.start()
        feed = TickFeed(sub, scheduler=AsyncIOScheduler(asyncio.get_running_loop()))
        ticks: list[Tick] = []
        feed.ticks(KEY).subscribe(ticks.append)
        probes: list[Message] = []
        sub.observe("probe").subscribe(probes.append)
        raw = zctx.socket(zmq.PUB)
        raw.connect(bus.pub_endpoint)
        pub = Publisher(bus.pub_endpoint)
        try:
            while not probes or monitor.last("probe") is None:  # both subscriptions crossed the proxy
                pub.publish("probe", 0)
                pub.publish("heartbeat.probe", beat("probe", 1))
                raw.send(frame("probe", 0))
                await asyncio.sleep(0.02)
            for n, data in enumerate(flood):
                raw.send(data)
                if n % 50 == 0:
                    await asyncio.sleep(0.001)  # a flood, but one ZeroMQ's queues (1,000 deep) do not overflow
            good = {"instrument": KEY, "time": datetime.now(UTC), "bid": 99.0, "ask": 101.0, "last": 100.0,
                    "bid_size": 1.0, "ask_size": 1.0, "last_size": 1.0, "volume": 20.0}
            raw.send(frame(f"tick.ib.{KEY}", good))
            raw.send(frame("heartbeat.svc", beat("svc", supervised_pid)))
            await wait_until(lambda: monitor.last("svc") is not None and bool(ticks), 10, "the good beat and tick")
            assert [t.last for t in ticks] == [100.0]
            assert feed.bad_ticks == 1000
            assert monitor.malformed == 10
            assert monitor.ignored["svc"] == 500 and monitor.last("svc").pid == supervised_pid  # type: ignore[union-attr]
            assert monitor.ignored[UNSUPERVISED] >= INVENTED // 2
            assert len(monitor._beats) == 2  # svc and probe
        finally:
            raw.close(linger=0)
            pub.close()
            sub.close()
            monitor.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(scenario(), 60))
    logged = sum(len(r.getMessage()) for r in caplog.records)
    assert logged < 20_000, f"{logged} characters logged for {len(flood)} bad frames"


BUS_SCRIPT = """
import sys, time
from trader.messaging.proxy import BusProxy
proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
proxy.start()
print(proxy.pub_endpoint, proxy.sub_endpoint, flush=True)
time.sleep(120)
"""

# The flooder is a process of its own: libzmq's XSUB keeps its subscriptions in the same trie (to send them
# again on reconnect), so the sender of a huge one crashes too when it closes; that is its problem, not ours.
FLOOD_SCRIPT = """
import sys, time, zmq
sock = zmq.Context().socket(zmq.XSUB)
sock.connect(sys.argv[1])
sock.send(b"\\x01" + b"x" * 300_000)
time.sleep(0.3)
sock.close(linger=0)
"""


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_huge_subscription_is_refused_by_the_bus_which_keeps_serving(zctx: zmq.Context) -> None:
    """One 300 KB subscription grew the bus by ~30 MB and crashed it when its sender left (libzmq's trie)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-c", BUS_SCRIPT], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        pub_endpoint, sub_endpoint = proc.stdout.readline().split()  # type: ignore[union-attr]
        before = _rss_kb(proc.pid)
        for _ in range(3):
            subprocess.run([sys.executable, "-c", FLOOD_SCRIPT, sub_endpoint], timeout=30, check=False)
            time.sleep(0.3)
        assert proc.poll() is None, "the bus died"
        assert _rss_kb(proc.pid) - before < 20_000, "the subscriptions were kept"
        pub, sub = zctx.socket(zmq.PUB), zctx.socket(zmq.SUB)
        pub.connect(pub_endpoint)
        sub.connect(sub_endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"tick")
        sub.setsockopt(zmq.RCVTIMEO, 200)
        deadline = time.monotonic() + 10
        while True:  # a subscription takes a moment to reach the publisher
            pub.send(frame("tick.sim.AAPL", {"last": 1.0}))
            try:
                assert sub.recv().startswith(b"tick.sim.AAPL\x00")
                break
            except zmq.Again:
                assert time.monotonic() < deadline, "the bus stopped forwarding"
        pub.close(linger=0)
        sub.close(linger=0)
    finally:
        proc.kill()
        proc.wait(5)


def test_the_subscriber_caches_only_valid_topics(bus: BusProxy, zctx: zmq.Context) -> None:
    """2 MB topics under a subscribed prefix were each cached (200 of them kept 767 MB)."""

    async def main() -> None:
        sub = Subscriber(bus.sub_endpoint)
        got: list[Message] = []
        sub.observe("heartbeat").subscribe(got.append)
        sub.start()
        raw = zctx.socket(zmq.PUB)
        raw.connect(bus.pub_endpoint)
        try:
            await asyncio.sleep(0.3)
            for n in range(20):
                raw.send(b"heartbeat" + b"x" * 100_000 + str(n).encode() + b"\x00" + codec.encode({}))
                raw.send(b"heartbeat.bad topic!\x00" + codec.encode({}))
            raw.send(frame("heartbeat.svc", beat("svc", 1)))
            await wait_until(lambda: got, timeout=10, what="the good beat")
            assert [m.topic for m in got] == ["heartbeat.svc"]
            assert len(sub._cache) <= 2 and sub.dropped >= 40  # only valid topics are cached
        finally:
            raw.close(linger=0)
            sub.close()

    asyncio.run(main())
