"""Strategy switches in a SavedHash on a real redis-server: kept, read back, and bounded when Redis stops answering."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.conftest import RedisServer
from trader.saved_hash import SavedHash
from trader.strategy.switches import Switches

KEY = "strategies:enabled"


def test_switches_are_kept_and_read_back(redis_server: RedisServer) -> None:
    async def go() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
        try:
            switches = Switches(client, KEY)
            assert await switches.load() == {}
            await switches.save("demo", False)
            await switches.save("other", True)
            await switches.save("demo", True)
            again = Switches(client, KEY)  # as a restarted service reads them
            assert await again.load() == {"demo": True, "other": True}
            await switches.save("other", False)
            assert await again.load() == {"demo": True, "other": False}
            assert await client.hgetall(KEY) == {b"demo": b"1", b"other": b"0"}
        finally:
            await client.aclose()

    asyncio.run(go())


def test_a_redis_that_stops_answering_costs_one_timeout_and_one_log_line_per_call(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
        await client.ping()  # connected before the server stops answering
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            switches = Switches(client, KEY)
            switches.hash.timeout = 0.3
            saved = SavedHash(client, "trader:snapshot:subscriptions", timeout=0.3)
            started = time.monotonic()
            with caplog.at_level(logging.WARNING):
                assert await switches.load() == {}  # each config's enabled: decides
                await switches.save("demo", True)
                assert not await saved.set("ES.FUT.202612", "now", lost="a restart will not stream it again")
                assert not await saved.delete("ES.FUT.202612", lost="a restart would stream it again")
                with pytest.raises(RedisError):
                    await saved.load()
            assert time.monotonic() - started < 5 * 0.3 + 1.0  # five calls, each bounded by the timeout
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
            await client.aclose()
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(lines) == 4, lines  # the failed load the caller raises is the caller's to log
        assert "cannot read the saved strategy switches" in lines[0]
        assert "demo=1 not saved in strategies:enabled" in lines[1] and "a restart will follow its config" in lines[1]
        assert "ES.FUT.202612=now not saved" in lines[2] and "ES.FUT.202612 not removed" in lines[3]

    asyncio.run(go())
