"""Recorder: queued entries journalled in order, pipelined, a moment later; each published only after its append;
what comes about an order being placed waits behind the order."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis.asyncio
import redis.exceptions

from tests.conftest import redis_argv, wait_for_port
from trader.errors import ValidationError
from trader.trading import recorder as recorder_module
from trader.trading.journal import Journal
from trader.trading.recorder import Recorder


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class SlowJournal:
    """A journal whose appends complete a few loop turns after they are sent; it logs both, and may blink.

    A blink fails a whole batch (as a lost connection fails a pipeline) and stores none of it.
    """

    def __init__(self, events: list[tuple[str, int]], blinks: int = 0) -> None:
        self.events = events
        self.blinks = blinks
        self.stored: list[int] = []

    async def append_many(self, entries: list[dict[str, Any]]) -> list[str | Exception]:
        for entry in entries:
            if entry.get("bad"):
                raise ValidationError("cannot encode")
        for entry in entries:
            self.events.append(("sent", entry["n"]))
        for _ in range(3):
            await asyncio.sleep(0)
        if self.blinks:
            self.blinks -= 1
            raise redis.exceptions.ConnectionError("blink")
        for entry in entries:
            self.stored.append(entry["n"])
            self.events.append(("appended", entry["n"]))
        return [f"0-{entry['n']}" for entry in entries]

    async def append(self, entry: dict[str, Any]) -> str:
        [appended] = await self.append_many([entry])
        assert isinstance(appended, str)
        return appended


def record_all(journal: SlowJournal, count: int) -> Recorder:
    """Record ``count`` entries (each published as its number), stop, and return the recorder."""

    async def main() -> Recorder:
        recorder = Recorder(journal, lambda topic, n: journal.events.append(("published", n)))  # type: ignore[arg-type]
        recorder.start()
        for n in range(count):
            recorder.record({"type": "order", "n": n}, "order.x", n)
        await recorder.stop()
        return recorder

    return run(main())


def test_queued_entries_go_out_together_and_each_is_published_after_its_append() -> None:
    events: list[tuple[str, int]] = []
    recorder = record_all(SlowJournal(events), 5)
    assert events[:5] == [("sent", n) for n in range(5)]  # one batch: all sent before the first answer
    assert [e for e in events if e[0] == "published"] == [("published", n) for n in range(5)]
    for n in range(5):
        assert events.index(("appended", n)) < events.index(("published", n))
    assert recorder.failures == 0 and recorder.pending == 0


def test_a_blink_is_retried_and_an_unencodable_entry_does_not_sink_its_batch() -> None:
    events: list[tuple[str, int]] = []
    journal = SlowJournal(events, blinks=1)

    async def main() -> Recorder:
        recorder = Recorder(journal, lambda topic, n: events.append(("published", n)))  # type: ignore[arg-type]
        recorder.start()
        recorder.record({"type": "order", "n": 0}, "order.x", 0)
        recorder.record({"type": "order", "n": 1, "bad": True}, "order.x", 1)
        recorder.record({"type": "order", "n": 2}, "order.x", 2)
        await recorder.stop()
        return recorder

    recorder = run(main())
    assert journal.stored == [0, 2]
    assert [e for e in events if e[0] == "published"] == [("published", 0), ("published", 2)]
    assert recorder.failures == 1


def test_a_long_outage_holds_the_queue_until_redis_is_back_and_loses_nothing(monkeypatch: Any) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST", 0.001)
    monkeypatch.setattr(recorder_module, "RETRY_MAX", 0.001)
    events: list[tuple[str, int]] = []
    journal = SlowJournal(events, blinks=3 * recorder_module.RETRY_ATTEMPTS)  # past one append's retries, thrice
    recorder = record_all(journal, 4)
    assert journal.stored == [0, 1, 2, 3] and journal.blinks == 0
    assert [e for e in events if e[0] == "published"] == [("published", n) for n in range(4)]
    assert recorder.failures == 0


def test_entries_go_out_a_moment_after_they_come_so_the_loop_answers_first() -> None:
    events: list[tuple[str, int]] = []

    async def main() -> None:
        recorder = Recorder(SlowJournal(events), lambda topic, n: None, linger=0.005)  # type: ignore[arg-type]
        recorder.start()
        recorder.record({"type": "order", "n": 1})
        for _ in range(10):
            await asyncio.sleep(0)
        assert events == []  # the loop has turned ten times: an answer due now would already be out
        recorder.record({"type": "order", "n": 2})
        await asyncio.sleep(0.05)
        assert events[:2] == [("sent", 1), ("sent", 2)]  # together, in one write
        await recorder.stop()

    run(main())


def test_what_comes_about_a_held_order_is_journalled_after_the_order_itself() -> None:
    events: list[tuple[str, int]] = []
    journal = SlowJournal(events)
    placing, other = SimpleNamespace(client_order_id="a"), SimpleNamespace(client_order_id="b")

    async def main() -> None:
        published: list[int] = []
        recorder = Recorder(journal, lambda topic, n: published.append(n))  # type: ignore[arg-type]
        recorder.start()
        recorder.hold(["a", "a.sl"])
        assert recorder.holding("a") and recorder.holding("a.sl") and not recorder.holding("b")
        recorder.record({"type": "order", "order": placing, "n": 3}, "order.submitted", 3)  # its ack, say
        recorder.record({"type": "fill", "fill": placing, "n": 4}, "fill", 4)
        recorder.record({"type": "order", "order": other, "n": 1}, "order.filled", 1)  # not held
        recorder.record({"type": "kill_switch", "n": 2}, "kill", 2)  # about no order
        assert recorder.pending == 2 + 2 + 2  # two queued, two parked, two orders held
        await asyncio.sleep(0.05)
        assert journal.stored == [1, 2]
        recorder.release([{"type": "order", "order": placing, "n": 0},
                          {"type": "order", "order": SimpleNamespace(client_order_id="a.sl"), "n": 0}],
                         "order.placed", 0)
        assert not recorder.holding("a")
        await recorder.stop()
        assert published == [1, 2, 0, 3, 4]  # the release publishes once, after its last entry

    run(main())
    assert journal.stored == [1, 2, 0, 0, 3, 4]


def test_stop_waits_for_an_order_being_placed_to_be_released() -> None:
    events: list[tuple[str, int]] = []
    journal = SlowJournal(events)

    async def main() -> None:
        recorder = Recorder(journal, lambda topic, n: None)  # type: ignore[arg-type]
        recorder.start()
        recorder.hold(["a"])
        placing = SimpleNamespace(client_order_id="a")
        asyncio.get_running_loop().call_later(0.05, recorder.release, [{"order": placing, "n": 1}], "t", 1)
        await recorder.stop()

    run(main())
    assert journal.stored == [1]


def test_write_now_sends_its_entries_together_and_returns_once_all_are_durable() -> None:
    events: list[tuple[str, int]] = []
    journal = SlowJournal(events, blinks=1)

    async def main() -> list[str]:
        recorder = Recorder(journal, lambda topic, n: events.append(("published", n)))  # type: ignore[arg-type]
        return await recorder.write_now([{"type": "order", "n": 1}, {"type": "order", "n": 2}])

    assert run(main()) == ["0-1", "0-2"]
    assert events[:2] == [("sent", 1), ("sent", 2)]  # one round trip, not one per entry
    assert journal.stored == [1, 2]  # the first blinked and was sent again, still first
    assert not [e for e in events if e[0] == "published"]


def test_against_redis_every_entry_is_journalled_in_order(redis_server: Any) -> None:
    published: list[int] = []

    async def main() -> list[int]:
        client = redis.asyncio.Redis(port=redis_server.port)
        journal = Journal(client, "journal:recorder")
        recorder = Recorder(journal, lambda topic, n: published.append(n))
        recorder.start()
        await recorder.write_now([{"type": "order", "n": -1}])
        for n in range(300):
            recorder.record({"type": "order", "n": n}, "order.x", n)
            if n % 50 == 0:
                await asyncio.sleep(0)  # batches of several sizes
        await recorder.stop()
        stored = [entry["n"] async for _, entry in journal.entries()]
        await journal.close()
        await client.aclose()
        return stored

    assert run(main()) == [-1, *range(300)]
    assert published == list(range(300))


def test_against_redis_an_outage_holds_the_queue_and_loses_nothing_once_redis_is_back(
        tmp_path: Path, free_port: Callable[[], int], monkeypatch: Any) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(recorder_module, "RETRY_MAX", 0.05)
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(redis_argv(port, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, 10, "redis-server")
        return proc

    async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    published: list[int] = []
    procs = [start()]

    async def main() -> list[int]:
        client = redis.asyncio.Redis(port=port)
        journal = Journal(client, "journal:outage")
        recorder = Recorder(journal, lambda topic, n: published.append(n))
        recorder.start()
        for n in range(100):
            recorder.record({"type": "order", "n": n}, "order.x", n)
        await until(lambda: recorder.pending == 0, "the first entries journalled")
        procs[0].terminate()  # a clean stop: its append-only file keeps what it stored
        await asyncio.to_thread(procs[0].wait, 5)
        for n in range(100, 200):
            recorder.record({"type": "order", "n": n}, "order.x", n)
            if n % 20 == 0:
                await asyncio.sleep(0.02)  # batches of several sizes, all failing
        await until(lambda: not journal.connected, "the outage seen")
        await asyncio.sleep(0.3)  # several retries
        assert published == list(range(100)) and recorder.pending == 100, "nothing published unjournalled"
        procs.append(await asyncio.to_thread(start))
        await until(lambda: recorder.pending == 0, "the queue written once Redis is back")
        assert journal.connected
        await recorder.stop()
        entries = [entry["n"] async for _, entry in journal.entries()]
        await journal.close()
        await client.aclose()
        assert recorder.failures == 0
        return entries

    try:
        assert run(main()) == list(range(200))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
    assert published == list(range(200))
