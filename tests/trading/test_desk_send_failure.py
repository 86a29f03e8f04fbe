"""A send that fails after the order was booked: booked as never sent, journalled so, and sent by its retry.

Real parts throughout: tws-sim in-process, ib_async through IbAdapter, a
redis-server this test stops and starts again. With Redis away, the desk
journals a new order before it sends it; the IB connection is lost while the
journal write waits for Redis, so once Redis is back the order is booked
(with its IB order id) and its send fails. Nothing reached the broker: the
book says so (REJECTED, no broker id, see ``never_sent``), the journal too, and
a retry with the same client order id sends it, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from tests.conftest import redis_argv, wait_for_port
from tests.sim.simulator import connect, running_sim, sim_config
from trader.brokers.ib import parsing
from trader.brokers.ib.adapter import IbAdapter
from trader.config import IbSettings, RiskSettings, TradingSettings
from trader.domain import OrderStatus
from trader.trading import recorder as recorder_module
from trader.trading.book import Book, never_sent, rebuild
from trader.trading.desk import Desk
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.reconcile import reconcile
from trader.trading.recorder import Recorder
from trader.trading.risk import RiskGate

ORDER = {"symbol": "AAPL", "action": "BUY", "quantity": 1, "client_order_id": "c1"}


async def until(condition: Callable[[], Any], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.01)


async def at_broker(port: int) -> int:
    """Return how many orders tws-sim holds (open or done) for our client order id ``c1``."""
    ib = await connect(port, 77)
    try:
        trades = [*await ib.reqAllOpenOrdersAsync(), *await ib.reqCompletedOrdersAsync(False)]
    finally:
        ib.disconnect()
    return sum(1 for t in trades if parsing.client_order_id_of(t.order.orderRef or "") == "c1")


@contextlib.asynccontextmanager
async def desk_on(sim_port: int, client: redis.asyncio.Redis, stream: str) -> AsyncIterator[SimpleNamespace]:
    """Yield a desk over a connected, reconciled IbAdapter on tws-sim, journalling to ``stream``."""
    journal = Journal(client, stream)
    recorder = Recorder(journal, lambda _topic, _payload: None)
    recorder.start()
    adapter = IbAdapter(IbSettings(port=sim_port, client_id=1), TradingSettings())
    book = Book()
    desk = Desk(adapter, Resolver(adapter), book, recorder, RiskGate(RiskSettings(), lambda: datetime.now(UTC)))
    adapter.start()
    try:
        assert await adapter.wait_connected(10)
        await reconcile(desk)
        yield SimpleNamespace(journal=journal, recorder=recorder, adapter=adapter, book=book, desk=desk)
    finally:
        await adapter.stop()
        await recorder.stop()
        await journal.close()
        await client.aclose()


def test_an_order_whose_send_failed_is_booked_never_sent_and_its_retry_sends_it_once(
        tmp_path: Path, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST", 0.2)  # the journal write retries slowly: time to cut IB
    monkeypatch.setattr(recorder_module, "RETRY_MAX", 0.2)
    caplog.set_level(logging.WARNING, logger=recorder_module.__name__)
    port = free_port()
    redis_procs: list[subprocess.Popen[bytes]] = []

    def start_redis() -> None:
        redis_procs.append(subprocess.Popen(redis_argv(port, tmp_path), stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        wait_for_port(port, 10, "redis-server")

    def stop_redis() -> None:
        redis_procs[-1].terminate()
        redis_procs[-1].wait(5)

    async def main() -> None:
        await asyncio.to_thread(start_redis)
        async with running_sim(sim_config()) as sim, \
                desk_on(sim.port, redis.asyncio.Redis(port=port), "journal:desk") as on:
            journal, recorder, adapter, book, desk = on.journal, on.recorder, on.adapter, on.book, on.desk
            await asyncio.to_thread(stop_redis)
            with pytest.raises(redis.exceptions.ConnectionError):
                await journal.append({"type": "note"})
            assert not journal.connected  # the desk journals a new order before sending it
            placing = asyncio.ensure_future(desk.place(dict(ORDER)))
            await until(lambda: "journal append failed" in caplog.text, "the order's journal write retrying")
            assert book.get("c1") is None, "not booked before the journal has it"
            await adapter.stop()  # the IB connection is lost meanwhile (and not made again yet)
            await asyncio.to_thread(start_redis)
            with pytest.raises(ConnectionError):
                await placing
            order = book.order("c1")
            assert never_sent(order) and order.status is OrderStatus.REJECTED
            assert desk.result("c1")["reason"].startswith("not sent: ConnectionError")
            await until(lambda: recorder.pending == 0, "the journal written")
            events = [(e["event"], e["order"].broker_order_id is None) async for _, e in journal.entries()
                      if e["type"] == "order"]
            assert events == [("submitted", False), ("not_sent", True)]
            assert never_sent((await rebuild(journal)).order("c1")), "a restart still lets the retry send it"
            assert await at_broker(sim.port) == 0

            adapter.start()
            assert await adapter.wait_connected(10)
            await reconcile(desk)
            sent = (await desk.place(dict(ORDER)))["order"]
            assert sent.broker_order_id is not None and not never_sent(sent)
            again = (await desk.place(dict(ORDER)))["order"]  # a retry of the retry returns it
            assert again.broker_order_id == sent.broker_order_id
            assert await at_broker(sim.port) == 1, "sent once, by the retry"

    try:
        asyncio.run(main())
    finally:
        for proc in redis_procs:
            proc.kill()
            proc.wait(5)


def test_a_placement_cancelled_after_its_send_is_not_booked_as_never_sent(redis_server: Any) -> None:
    """The broker has the order: losing the connection (and its order handles) and the call must not undo that."""

    async def main() -> None:
        async with running_sim(sim_config()) as sim, \
                desk_on(sim.port, redis.asyncio.Redis.from_url(redis_server.url), "journal:cancelled") as on:
            journal, adapter, book, desk = on.journal, on.adapter, on.book, on.desk
            sim.set_response_delay(3.0)  # the acknowledgement is slow: the call still waits for it
            placing = asyncio.ensure_future(desk.place(dict(ORDER)))
            await until(lambda: adapter.sent_order_id("c1") is not None, "the order sent")
            await adapter.stop()  # the connection goes, and the session's order handles with it
            placing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await placing
            order = book.order("c1")
            assert order.broker_order_id is not None and not never_sent(order), "the broker has it"
            sim.set_response_delay(0.0)
            deadline = time.monotonic() + 10
            while (rebuilt := await rebuild(journal)).get("c1") is None:  # the journal is written a moment later
                assert time.monotonic() < deadline, "the order never reached the journal"
                await asyncio.sleep(0.02)
            assert not never_sent(rebuilt.order("c1")), "a restart does not send it again either"

    asyncio.run(main())
