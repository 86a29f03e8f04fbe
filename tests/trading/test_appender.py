"""StreamAppender: RESP replies parsed by hand, pipelined XADDs against a real redis-server, failures typed."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from tests.conftest import redis_argv, wait_for_port
from trader.trading.appender import StreamAppender, command, parse_reply


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the wire, without I/O --------------------------------------------------------


def test_command_is_an_array_of_bulk_strings() -> None:
    assert command(b"XADD", b"s", b"*", b"e", b"\x00\r\n") == \
        b"*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\ne\r\n$3\r\n\x00\r\n\r\n"


@pytest.mark.parametrize(("wire", "value"), [
    (b"$15\r\n1700000000000-0\r\n", b"1700000000000-0"),
    (b"$3\r\na\r\n\r\n", b"a\r\n"),  # a bulk string is read by its length, not up to the first CRLF
    (b"+OK\r\n", b"OK"),
    (b":42\r\n", 42),
    (b"$-1\r\n", None),
])
def test_parse_reply_reads_one_whole_reply(wire: bytes, value: Any) -> None:
    assert parse_reply(bytearray(wire + b"+NEXT\r\n")) == (value, len(wire))


@pytest.mark.parametrize("wire", [b"", b"$15\r\n1700000", b"$3\r\nabc", b"+OK", b":4"])
def test_parse_reply_waits_for_the_rest_of_a_partial_reply(wire: bytes) -> None:
    assert parse_reply(bytearray(wire)) is None


def test_parse_reply_returns_an_error_reply_and_refuses_garbage() -> None:
    wire = b"-WRONGTYPE Operation against a key\r\n"
    error, size = parse_reply(bytearray(wire))
    assert isinstance(error, redis.exceptions.ResponseError) and "WRONGTYPE" in str(error)
    assert size == len(wire)
    with pytest.raises(redis.exceptions.InvalidResponse):
        parse_reply(bytearray(b"?what\r\n"))


# --- against redis-server ------------------------------------------------------------


def test_concurrent_appends_are_pipelined_and_answered_in_order(redis_server: Any) -> None:
    async def main() -> tuple[list[bytes], list[tuple[bytes, dict[bytes, bytes]]]]:
        appender = StreamAppender("127.0.0.1", redis_server.port)
        ids = await asyncio.gather(*(appender.xadd(b"s", {b"e": str(i).encode()}) for i in range(200)))
        client = redis.asyncio.Redis(port=redis_server.port)
        stored = await client.xrange("s")
        await client.aclose()
        await appender.close()
        return ids, stored

    ids, stored = run(main())
    assert [i for i, _ in stored] == ids  # each caller got its own entry's id
    assert [fields[b"e"] for _, fields in stored] == [str(i).encode() for i in range(200)]


def test_an_error_reply_fails_that_append_only(redis_server: Any) -> None:
    async def main() -> bytes:
        client = redis.asyncio.Redis(port=redis_server.port)
        await client.set("plain", "x")
        await client.aclose()
        appender = StreamAppender("127.0.0.1", redis_server.port)
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            await appender.xadd(b"plain", {b"e": b"1"})
        entry_id = await appender.xadd(b"s", {b"e": b"1"})  # the connection is still in step
        await appender.close()
        return entry_id

    assert run(main()).endswith(b"-0")


def test_a_connection_killed_between_appends_is_made_again(redis_server: Any) -> None:
    async def main() -> list[Any]:
        appender = StreamAppender("127.0.0.1", redis_server.port)
        await appender.xadd(b"s", {b"e": b"1"})
        client = redis.asyncio.Redis(port=redis_server.port)
        assert await client.client_kill_filter(_type="normal", skipme=True) == 1
        await asyncio.sleep(0.05)
        await appender.xadd(b"s", {b"e": b"2"})
        stored = await client.xrange("s")
        await client.aclose()
        await appender.close()
        await appender.close()  # twice is fine
        return stored

    assert [fields[b"e"] for _, fields in run(main())] == [b"1", b"2"]


def test_a_connection_lost_mid_append_fails_it_and_the_next_append_reconnects() -> None:
    async def main() -> None:
        connections = 0

        async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.read(1)
            if connections > 1:  # the second connection answers
                writer.write(b"$3\r\n1-0\r\n")
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(flaky, "127.0.0.1", 0)
        appender = StreamAppender("127.0.0.1", server.sockets[0].getsockname()[1])
        with pytest.raises(redis.exceptions.ConnectionError, match="lost"):
            await appender.xadd(b"s", {b"e": b"1"})
        assert await appender.xadd(b"s", {b"e": b"1"}) == b"1-0"
        await appender.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_no_server_is_a_connection_error(free_port: Callable[[], int]) -> None:
    async def main() -> None:
        appender = StreamAppender("127.0.0.1", free_port())
        with pytest.raises(redis.exceptions.ConnectionError, match="cannot connect"):
            await appender.xadd(b"s", {b"e": b"1"})

    run(main())


def test_a_silent_server_is_a_timeout_and_the_connection_is_dropped() -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        appender = StreamAppender("127.0.0.1", port, timeout=0.2)
        with pytest.raises(redis.exceptions.TimeoutError, match="did not answer"):
            await appender.xadd(b"s", {b"e": b"1"})
        with pytest.raises(redis.exceptions.TimeoutError):
            await appender.xadd(b"s", {b"e": b"2"})  # a new connection, as silent
        assert len(accepted) == 2
        await appender.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()

    run(main())


@pytest.fixture
def redis_with_password(tmp_path: Path, free_port: Callable[[], int]) -> Any:
    port = free_port()
    proc = subprocess.Popen([*redis_argv(port, tmp_path), "--requirepass", "s3cret"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10, "redis-server")
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def test_password_and_db_are_sent_before_the_first_append(redis_with_password: int) -> None:
    async def main() -> list[Any]:
        appender = StreamAppender("127.0.0.1", redis_with_password, password="s3cret", db=3)
        await appender.xadd(b"s", {b"e": b"1"})
        await appender.close()
        wrong = StreamAppender("127.0.0.1", redis_with_password, password="nope")
        with pytest.raises(redis.exceptions.AuthenticationError, match="refused"):
            await wrong.xadd(b"s", {b"e": b"1"})
        client = redis.asyncio.Redis(port=redis_with_password, password="s3cret", db=3)
        stored = await client.xrange("s")
        await client.aclose()
        return stored

    assert [fields for _, fields in run(main())] == [{b"e": b"1"}]


def test_close_fails_appends_in_flight() -> None:
    async def main() -> None:
        held: list[asyncio.StreamWriter] = []
        server = await asyncio.start_server(lambda _r, w: held.append(w), "127.0.0.1", 0)  # never answers
        appender = StreamAppender("127.0.0.1", server.sockets[0].getsockname()[1], timeout=None)
        pending = asyncio.ensure_future(appender.xadd(b"s", {b"e": b"1"}))
        await asyncio.sleep(0.05)  # connected and sent
        assert not pending.done()
        await appender.close()
        with pytest.raises(redis.exceptions.ConnectionError, match="closed"):
            await asyncio.wait_for(pending, 1)
        server.close()
        await server.wait_closed()

    run(main())
