"""StreamAppender against a real redis-server: XADDs through redis-py in order, batched, failures typed."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from tests.conftest import redis_argv, wait_for_port
from trader.trading.appender import StreamAppender


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def stored(port: int, stream: str = "s", **kwargs: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    client = redis.asyncio.Redis(port=port, **kwargs)
    try:
        return await client.xrange(stream)
    finally:
        await client.aclose()


def test_a_batch_is_stored_in_order_and_each_entry_gets_its_own_id(redis_server: Any) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        appender = StreamAppender(redis.asyncio.Redis(port=redis_server.port))
        ids = await appender.xadd_many(b"s", [{b"e": str(i).encode()} for i in range(200)])
        assert await appender.xadd_many(b"s", []) == []
        await appender.close()
        return ids, await stored(redis_server.port)

    ids, entries = run(main())
    assert [i for i, _ in entries] == ids
    assert [fields[b"e"] for _, fields in entries] == [str(i).encode() for i in range(200)]


def test_concurrent_appends_are_stored_in_the_order_they_were_asked_for(redis_server: Any) -> None:
    async def main() -> list[Any]:
        appender = StreamAppender(redis.asyncio.Redis(port=redis_server.port))

        async def one(i: int) -> list[Any]:
            if i % 3:
                return [await appender.xadd(b"s", {b"e": b"%d" % i})]
            return await appender.xadd_many(b"s", [{b"e": b"%d" % i}, {b"e": b"%d+" % i}])

        ids = [i for batch in await asyncio.gather(*(one(i) for i in range(60))) for i in batch]
        entries = await stored(redis_server.port)
        assert [i for i, _ in entries] == ids  # each caller got its own entries' ids
        await appender.close()
        return [fields[b"e"] for _, fields in entries]

    expected = [e for i in range(60) for e in ([b"%d" % i] if i % 3 else [b"%d" % i, b"%d+" % i])]
    assert run(main()) == expected


def test_an_error_reply_fails_those_entries_only_and_the_connection_stays_in_step(redis_server: Any) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(port=redis_server.port)
        await client.set("plain", "x")
        appender = StreamAppender(client)
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            await appender.xadd(b"plain", {b"e": b"1"})
        replies = await appender.xadd_many(b"plain", [{b"e": b"1"}, {b"e": b"2"}])
        assert all(isinstance(r, redis.exceptions.ResponseError) for r in replies) and len(replies) == 2
        assert appender.connected, "Redis answered: it is reachable"
        assert (await appender.xadd(b"s", {b"e": b"1"})).endswith(b"-0")
        await appender.close()
        await client.aclose()

    run(main())


def test_a_connection_killed_between_appends_is_made_again(redis_server: Any) -> None:
    async def main() -> list[Any]:
        client = redis.asyncio.Redis(port=redis_server.port)
        appender = StreamAppender(client)
        await appender.xadd(b"s", {b"e": b"1"})
        assert await client.client_kill_filter(_type="normal", skipme=True) == 1
        await asyncio.sleep(0.05)
        await appender.xadd_many(b"s", [{b"e": b"2"}])
        await appender.close()
        await appender.close()  # twice is fine
        await appender.xadd(b"s", {b"e": b"3"})  # and a later append connects again
        await appender.close()
        await client.aclose()
        return await stored(redis_server.port)

    assert [fields[b"e"] for _, fields in run(main())] == [b"1", b"2", b"3"]


def start_redis(port: int, data: Path, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*redis_argv(port, data), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 10, "redis-server")
    return proc


def test_redis_away_fails_at_once_and_connected_says_so_until_it_is_back(
        tmp_path: Path, free_port: Callable[[], int]) -> None:
    port = free_port()

    async def main() -> list[Any]:
        appender = StreamAppender(redis.asyncio.Redis(port=port))
        assert appender.connected  # nothing tried yet
        with pytest.raises(redis.exceptions.ConnectionError):
            await asyncio.wait_for(appender.xadd(b"s", {b"e": b"1"}), 2)  # no retries of its own: at once
        assert not appender.connected
        with pytest.raises(redis.exceptions.ConnectionError):
            await appender.xadd_many(b"s", [{b"e": b"1"}])
        proc = await asyncio.to_thread(start_redis, port, tmp_path)
        try:
            await appender.xadd_many(b"s", [{b"e": b"2"}])
            assert appender.connected
            await appender.close()
            return await stored(port)
        finally:
            proc.kill()
            proc.wait(5)

    assert [fields[b"e"] for _, fields in run(main())] == [b"2"]


def test_a_dropped_or_silent_server_fails_the_append_once_without_retries() -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        async def dropping(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            writer.close()

        for handler, error in ((dropping, redis.exceptions.ConnectionError),
                               (silent, redis.exceptions.TimeoutError)):
            accepted.clear()
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            appender = StreamAppender(redis.asyncio.Redis(port=port, socket_timeout=0.2))
            with pytest.raises(error):
                await appender.xadd(b"s", {b"e": b"1"})
            assert len(accepted) == 1, "redis-py's own retries are off: the recorder's are the only ones"
            assert not appender.connected
            await appender.close()
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()

    run(main())


@pytest.fixture
def redis_with_password(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[int]:
    port = free_port()
    proc = start_redis(port, tmp_path, "--requirepass", "s3cret")
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def test_the_callers_password_and_db_are_used(redis_with_password: int) -> None:
    async def main() -> list[Any]:
        client = redis.asyncio.Redis(port=redis_with_password, password="s3cret", db=3)
        appender = StreamAppender(client)
        await appender.xadd(b"s", {b"e": b"1"})
        await appender.close()
        await client.aclose()
        wrong = StreamAppender(redis.asyncio.Redis(port=redis_with_password, password="nope"))
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.xadd(b"s", {b"e": b"1"})
        await wrong.close()
        return await stored(redis_with_password, password="s3cret", db=3)

    assert [fields for _, fields in run(main())] == [{b"e": b"1"}]
