"""The tick feed on a real bus: dict ticks become Ticks and bars; bad payloads are dropped, never fatal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from reactivex.scheduler.eventloop import AsyncIOScheduler

from tests.waiting import wait_until
from trader.domain import Bar, Tick
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Message, Publisher, Subscriber
from trader.strategy.feed import TickFeed

KEY = "AAPL.STK"
TOPIC = f"tick.ib.{KEY}"


def tick(at: datetime, last: float, volume: float) -> dict[str, object]:
    return {"instrument": KEY, "time": at, "bid": last - 0.01, "ask": last + 0.01, "last": last,
            "bid_size": 100.0, "ask_size": 100.0, "last_size": 300.0, "volume": volume}


def test_ticks_and_bars_from_the_bus_survive_bad_payloads() -> None:
    proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    proxy.start()

    async def scenario() -> None:
        pub = Publisher(proxy.pub_endpoint)
        sub = Subscriber(proxy.sub_endpoint)
        sub.start()
        feed = TickFeed(sub, scheduler=AsyncIOScheduler(asyncio.get_running_loop()), grace=0.05)
        ticks: list[Tick] = []
        bars: list[Bar] = []
        probes: list[Message] = []
        feed.ticks(KEY).subscribe(ticks.append)
        feed.bars(KEY, 1).subscribe(bars.append)
        feed.bars(KEY, 1).subscribe(lambda _bar: None)  # a second strategy on the same bars: one aggregator
        sub.observe("probe").subscribe(probes.append)
        while not probes:  # the subscription has crossed the proxy
            pub.publish("probe", 0)
            await asyncio.sleep(0.01)

        now = datetime.now(UTC)
        start = now.replace(microsecond=0) + timedelta(seconds=1)  # a whole second ahead
        await asyncio.sleep((start - now).total_seconds())
        pub.publish(TOPIC, tick(start, 100.0, 1000.0))
        pub.publish(TOPIC, "not a tick")                                   # garbage payload
        pub.publish(TOPIC, {"instrument": KEY, "last": 101.0})             # no time
        pub.publish(TOPIC, {**tick(start, 99.0, 1000.0), "bid": "cheap"})  # a wrong type
        pub.publish(f"{TOPIC}.x", tick(start, 1.0, 1.0))                   # a topic below the key's
        pub.publish(TOPIC, tick(start + timedelta(milliseconds=100), 102.0, 1200.0))
        pub.publish(TOPIC, {**tick(start + timedelta(milliseconds=200), 0.0, 1200.0), "last": None,
                            "bid": None})                                   # no usable price: no bar input
        pub.publish(TOPIC, tick(start + timedelta(milliseconds=300), 101.5, 1500.0))
        await wait_until(lambda: len(bars) == 1, 5, "the bar closed by its timer")
        assert [t.last for t in ticks] == [100.0, 102.0, None, 101.5]
        assert [t.last_size for t in ticks] == [None, 200.0, None, 300.0]  # traded since the previous update
        bar = bars[0]
        assert (bar.instrument, bar.start, bar.size) == (KEY, start, "1s")
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (100.0, 102.0, 100.0, 101.5, 500.0)
        assert feed.bad_ticks == 4 and len(feed.aggregators) == 1
        assert feed.aggregators[(KEY, 1)].stats["skipped"] == 1
        sub.close()
        pub.close()

    try:
        asyncio.run(scenario())
    finally:
        proxy.stop()


def test_absurd_ticks_from_the_bus_are_dropped_and_counted() -> None:
    """The probe's ticks at 1e308, 5e-324 and the like never reach a strategy or its bars."""
    proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    proxy.start()

    async def scenario() -> None:
        absurd: list[dict[str, object]] = []
        pub = Publisher(proxy.pub_endpoint)
        sub = Subscriber(proxy.sub_endpoint)
        sub.start()
        feed = TickFeed(sub, scheduler=AsyncIOScheduler(asyncio.get_running_loop()), grace=0.05)
        ticks: list[Tick] = []
        bars: list[Bar] = []
        feed.ticks(KEY).subscribe(ticks.append)
        feed.bars(KEY, 1).subscribe(bars.append)
        probes: list[Message] = []
        sub.observe("probe").subscribe(probes.append)
        while not probes:
            pub.publish("probe", 0)
            await asyncio.sleep(0.01)
        now = datetime.now(UTC)
        start = now.replace(microsecond=0) + timedelta(seconds=1)
        await asyncio.sleep((start - now).total_seconds())
        pub.publish(TOPIC, tick(start, 100.0, 1000.0))
        at = start + timedelta(milliseconds=100)
        for price in (1e308, 5e-324, float("nan"), float("inf"), -float("inf"), -100.0, 0.0, 1e-300):
            absurd.append({**tick(at, price, 1000.0), "bid": price, "ask": price})
            absurd.append({**tick(at, 100.0, 1000.0), "last": price})
        absurd.append(tick(at, 100.0, 1e308))  # a session volume of 1e308
        absurd.append({**tick(at, 100.0, 1000.0), "bid_size": -5.0})
        absurd *= 20  # a flood, bounded: 360 ticks
        absurd.append(tick(at, 100_000.0, 1000.0))  # a jump of three orders of magnitude, once
        for payload in absurd:
            pub.publish(TOPIC, payload)
        pub.publish(TOPIC, tick(start + timedelta(milliseconds=300), 101.0, 1100.0))
        await wait_until(lambda: len(bars) == 1, 5, "the bar closed by its timer")
        assert [t.last for t in ticks] == [100.0, 101.0]
        assert ticks[1].last_size == 100.0  # traded since the last good update, not since 1e308
        assert feed.bad_ticks == len(absurd)
        bar = bars[0]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (100.0, 101.0, 100.0, 101.0, 100.0)
        sub.close()
        pub.close()

    try:
        asyncio.run(scenario())
    finally:
        proxy.stop()
