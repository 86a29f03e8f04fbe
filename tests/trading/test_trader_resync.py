"""trader_service's re-sync after a (re)connect with Redis down: the kill switch's cancel first, retried until synced.

A real redis-server (stopped and started again), the broker double behind the
seam, and the service's own re-sync hook (``Resync.run``) as the adapter calls it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

import trader.trading.recorder as recorder_module
from services.trader_service import TraderService
from tests.conftest import redis_argv, wait_for_port
from tests.trading.broker_double import BrokerDouble
from tests.trading.test_book import make_order
from trader.brokers.records import OrderReport
from trader.config import Settings
from trader.domain import OrderStatus, OrderType
from trader.retry import RetryPolicy
from trader.trading.desk import Desk
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.recorder import Recorder

pytestmark = pytest.mark.slow


def orphan_report() -> OrderReport:
    """An order of ours the broker lists and the book does not know: reconcile adopts and journals it."""
    order = make_order("orphan", 5, order_type=OrderType.LMT, limit_price=Decimal(10))
    at_broker = dataclasses.replace(order, broker_order_id=7, perm_id=107)
    return OrderReport("orphan", "manual#orphan", 7, 107, OrderStatus.SUBMITTED, "Submitted", Decimal(0),
                       Decimal(5), order=at_broker)


def test_a_resync_failing_on_redis_still_cancels_and_is_retried_until_synced(
        tmp_path: Path, free_port: Callable[[], int], monkeypatch: Any) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST", 0.01)  # the recorder gives up on an append in ~0.3 s
    monkeypatch.setattr(recorder_module, "RETRY_MAX", 0.05)
    port = free_port()

    def start_redis() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(redis_argv(port, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, 10, "redis-server")
        return proc

    procs = [start_redis()]
    broker = BrokerDouble()
    broker.held_orders = [orphan_report()]
    service = TraderService(Settings())
    service.adapter = broker  # type: ignore[assignment]

    async def until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def main() -> None:
        client = redis.asyncio.Redis(port=port)
        journal = Journal(client, "test:journal")
        recorder = Recorder(journal, lambda _topic, _payload: None)
        recorder.start()
        service.journal, service.recorder = journal, recorder
        service.desk = Desk(broker, Resolver(broker), service.book, recorder, service.risk)
        service.wire(service.desk, journal)
        resyncer = service.resync
        assert resyncer is not None
        resyncer.retry = RetryPolicy(0.1, 0.3)
        service.risk.engage_kill_switch("engaged before the restart")
        procs[0].kill()
        procs[0].wait(5)
        resync = asyncio.get_running_loop().create_task(resyncer.run())
        await until(lambda: broker.global_cancels == 1, "the global cancel sent before the reconcile", 2)
        await until(lambda: resyncer.error is not None, "the failed re-sync reported")
        status = service.status()
        assert status["state"] == "DEGRADED" and "re-sync" in status["reason"] and "orders refused" in status["reason"]
        assert status["synced"] is False and not resync.done(), "retried, not given up"
        procs.append(start_redis())
        await asyncio.wait_for(resync, 15)
        assert service.desk.synced and service.status()["synced"] is True and resyncer.error is None
        assert service.book.order("orphan").broker_order_id == 7
        assert broker.global_cancels == 1
        assert [e["type"] async for _id, e in journal.entries()] == ["order", "reconcile"]
        service.risk.release_kill_switch()
        service.desk._require_synced()  # orders are taken again
        await recorder.stop()
        await client.aclose()

    try:
        asyncio.run(main())
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
