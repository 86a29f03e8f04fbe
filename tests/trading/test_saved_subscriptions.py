"""SavedSubscriptions on a real redis-server: saved, forgotten, restored; a bad key or a lost broker is not fatal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tests.conftest import RedisServer
from tests.waiting import wait_until_blocking
from trader.errors import NotFound, Unavailable
from trader.trading.subscriptions import SavedSubscriptions

KEY = "trader:snapshot:subscriptions"


def scenario(server: RedisServer, body: Callable[[SavedSubscriptions], Awaitable[None]]) -> None:
    async def go() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0))  # fail at once
        try:
            await body(SavedSubscriptions(client, KEY))
        finally:
            await client.aclose()

    asyncio.run(go())


def test_saved_keys_are_restored_once_a_bad_one_reported_and_an_away_broker_stops_the_rest(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    subscribed: list[str] = []
    away = {"CL.FUT.202612"}

    async def subscribe(key: str) -> Any:
        if key == "ZZ.FUT.202001":
            raise NotFound(f"unknown symbol {key!r}")
        if key in away:
            raise Unavailable("not connected to IB")
        subscribed.append(key)

    async def body(saved: SavedSubscriptions) -> None:
        for key in ("ES.FUT.202612", "EUR.CASH.USD", "ZZ.FUT.202001", "CL.FUT.202612", "NQ.FUT.202612"):
            assert await saved.add(key)
        assert await saved.load() == ["CL.FUT.202612", "ES.FUT.202612", "EUR.CASH.USD", "NQ.FUT.202612",
                                      "ZZ.FUT.202001"]
        # ES is streamed already (the adapter kept it over a reconnect); CL finds the broker gone: stop there
        with caplog.at_level(logging.WARNING, logger="trader.trading.subscriptions"):
            done = await saved.restore(subscribe, ["ES.FUT.202612"])
        assert done == [] and subscribed == []  # sorted: CL first, and the broker is away
        assert "the next connect restores the rest" in caplog.text
        away.clear()
        done = await saved.restore(subscribe, ["ES.FUT.202612"])
        assert done == ["CL.FUT.202612", "EUR.CASH.USD", "NQ.FUT.202612"] == subscribed
        assert list(saved.errors) == ["ZZ.FUT.202001"] and "unknown symbol" in saved.errors["ZZ.FUT.202001"]
        assert "ZZ.FUT.202001" in await saved.load()  # kept: reported, not dropped
        assert saved.restored == 3
        # unsubscribe forgets a key, and its error with it
        assert await saved.remove("ZZ.FUT.202001") and saved.errors == {}
        assert await saved.remove("EUR.CASH.USD")
        assert not await saved.remove("EUR.CASH.USD")
        assert await saved.load() == ["CL.FUT.202612", "ES.FUT.202612", "NQ.FUT.202612"]

    scenario(redis_server, body)


def test_without_redis_nothing_raises(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def subscribe(key: str) -> Any:
        raise AssertionError("nothing to restore without Redis")

    async def body(saved: SavedSubscriptions) -> None:
        assert await saved.add("ES.FUT.202612")
        redis_server_down(redis_server)
        with caplog.at_level(logging.WARNING, logger="trader.trading.subscriptions"):
            assert not await saved.add("NQ.FUT.202612")
            assert not await saved.remove("ES.FUT.202612")
            with pytest.raises(RedisError):  # the trader service retries it while connected
                await saved.restore(subscribe, [])
        assert "not saved" in caplog.text and "not removed" in caplog.text

    scenario(redis_server, body)


def redis_server_down(server: RedisServer) -> None:
    """Kill the test's redis-server and wait until it is gone (the fixture's kill at teardown finds it so)."""
    os.kill(server.pid, signal.SIGKILL)
    wait_until_blocking(lambda: not _listening(server.port), 5, "redis-server gone")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True
