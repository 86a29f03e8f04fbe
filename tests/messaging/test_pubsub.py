"""Pub/sub through a real bus proxy on loopback: routing, Rx streams, bad frames."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
import zmq
from reactivex import operators as ops

from tests.waiting import wait_until
from trader.errors import ValidationError
from trader.messaging import codec
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Message, Publisher, Subscriber, check_topic, topic_matches


async def _joined(pub: Publisher, sub: Subscriber, topic: str = "probe") -> None:
    """Publish probes until the subscription has reached the publisher (slow joiner)."""
    seen: list[Message] = []
    disposable = sub.observe(topic).subscribe(seen.append)
    try:
        for _ in range(500):
            pub.publish(topic, 0)
            await asyncio.sleep(0.01)
            if seen:
                return
        raise AssertionError("subscription never reached the publisher")
    finally:
        disposable.dispose()


def test_topic_matching_is_hierarchical() -> None:
    assert topic_matches("tick.sim", "tick.sim")
    assert topic_matches("tick.sim", "tick.sim.AAPL")
    assert not topic_matches("tick.sim", "tick.simx")
    assert not topic_matches("tick.sim.AAPL", "tick.sim")
    assert topic_matches("", "anything.at.all")


@pytest.mark.parametrize("bad", ["", "tick..sim", "tick sim", "tick\x00", ".tick", "tick.", "tïck"])
def test_invalid_topics_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="invalid topic"):
        check_topic(bad)


def test_messages_reach_rx_streams_by_topic_family(bus: BusProxy) -> None:
    async def scenario() -> None:
        pub = Publisher(bus.pub_endpoint)
        sub = Subscriber(bus.sub_endpoint)
        sub.start()
        family: list[Message] = []
        prices: list[float] = []
        sub.observe("tick.sim").subscribe(family.append)
        sub.observe("tick.sim.AAPL").pipe(
            ops.map(lambda m: m.payload["last"]), ops.filter(lambda p: p > 100)
        ).subscribe(prices.append)
        await _joined(pub, sub)
        for i in range(200):
            pub.publish("tick.sim.AAPL", {"last": 99.5 + i})
            pub.publish("tick.sim.MSFT", {"last": 1.0})
            pub.publish("tick.simx.AAPL", {"last": 1.0})  # a sibling family: not ours
            pub.publish("fill", {"x": 1})  # no subscriber at all
        await wait_until(lambda: len(family) == 400 and len(prices) == 199)
        await asyncio.sleep(0.05)
        assert len(family) == 400
        assert {m.topic for m in family} == {"tick.sim.AAPL", "tick.sim.MSFT"}
        assert prices == [99.5 + i for i in range(1, 200)]
        pub.close()
        sub.close()

    asyncio.run(scenario())


def test_disposing_a_stream_unsubscribes_and_close_completes(bus: BusProxy) -> None:
    async def scenario() -> None:
        pub = Publisher(bus.pub_endpoint)
        sub = Subscriber(bus.sub_endpoint)
        sub.start()
        first: list[Message] = []
        second: list[Message] = []
        completed: list[bool] = []
        d1 = sub.observe("order").subscribe(first.append)
        sub.observe("order").subscribe(second.append, on_completed=lambda: completed.append(True))
        await _joined(pub, sub)
        pub.publish("order.new", 1)
        await wait_until(lambda: len(first) == 1 and len(second) == 1)
        d1.dispose()
        pub.publish("order.new", 2)
        await wait_until(lambda: len(second) == 2)
        assert [m.payload for m in first] == [1]
        sub.close()
        assert completed == [True]
        sub.close()  # twice is fine
        pub.close()

    asyncio.run(scenario())


def test_a_raising_observer_does_not_end_other_streams_or_later_messages(bus: BusProxy) -> None:
    async def scenario() -> None:
        pub = Publisher(bus.pub_endpoint)
        sub = Subscriber(bus.sub_endpoint)
        sub.start()
        good: list[int] = []
        calls: list[int] = []

        def bad(message: Message) -> None:
            calls.append(message.payload)
            if message.payload % 2:
                raise RuntimeError("strategy bug")

        sub.observe("tick").subscribe(bad)
        sub.observe("tick").subscribe(lambda m: good.append(m.payload))
        await _joined(pub, sub)
        for i in range(10):
            pub.publish("tick.sim.ES", i)
        await wait_until(lambda: len(good) == 10)
        assert good == list(range(10))
        assert calls == list(range(10))  # the raising observer kept getting messages
        pub.close()
        sub.close()

    asyncio.run(scenario())


def test_garbage_frames_are_dropped_and_the_bus_keeps_serving(bus: BusProxy, zctx: zmq.Context) -> None:
    async def scenario() -> None:
        raw = zctx.socket(zmq.PUB)
        raw.connect(bus.pub_endpoint)
        pub = Publisher(bus.pub_endpoint)
        sub = Subscriber(bus.sub_endpoint)
        sub.start()
        got: list[Message] = []
        sub.observe("").subscribe(got.append)
        await _joined(pub, sub)
        got.clear()
        rng = random.Random(7)
        valid = b"tick.sim.X\x00" + codec.encode({"last": 1.5})
        garbage = []
        for _ in range(3000):
            kind = rng.randrange(4)
            if kind == 0:
                garbage.append(os.urandom(rng.randrange(1, 64)))
            elif kind == 1:
                garbage.append(b"tick.sim.X\x00" + os.urandom(rng.randrange(1, 32)))
            elif kind == 2:
                garbage.append(valid[: rng.randrange(len(valid))])
            else:
                garbage.append(b"\xff\xfe\x00" + valid)
        await asyncio.sleep(0.2)  # let the raw publisher's connection settle
        for frame in garbage:
            raw.send(frame)
        pub.publish("tick.sim.X", {"last": 2.5})
        await wait_until(lambda: any(m.payload == {"last": 2.5} for m in got), timeout=10)
        assert sub.dropped > 0
        assert all(isinstance(m, Message) for m in got)
        raw.close(linger=0)
        pub.close()
        sub.close()

    asyncio.run(scenario())


def test_an_oversized_frame_is_refused_and_others_keep_publishing(bus: BusProxy, zctx: zmq.Context) -> None:
    async def scenario() -> None:
        hog = zctx.socket(zmq.PUB)
        hog.connect(bus.pub_endpoint)
        pub = Publisher(bus.pub_endpoint)
        sub = Subscriber(bus.sub_endpoint)
        sub.start()
        got: list[Message] = []
        sub.observe("big").subscribe(got.append)
        sub.observe("small").subscribe(got.append)
        await _joined(pub, sub)
        await asyncio.sleep(0.2)
        hog.send(b"big\x00" + codec.encode(b"x" * (2 * 1024 * 1024)))  # over the 1 MiB limit
        pub.publish("small", "still here")
        await wait_until(lambda: any(m.topic == "small" for m in got))
        await asyncio.sleep(0.2)
        assert [m.topic for m in got] == ["small"]
        hog.close(linger=0)
        pub.close()
        sub.close()

    asyncio.run(scenario())
