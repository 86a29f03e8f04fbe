"""pycron's control API under bad input, on 127.0.0.1: floods, non-UTF-8 and oversized headers, stalls.

Each test reproduces a finding of the probe (issue 15) and is bounded in
count and time: a few hundred requests, a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pycron_helpers import jobs_from, run, running

from pycron.api import REFUSED_BURST, ControlServer
from trader.config import Settings

TOKEN = "t0ken-for-fuzz"
GOOD = f"Bearer {TOKEN}".encode()


@asynccontextmanager
async def control_api(settings: Settings) -> AsyncIterator[int]:
    """Serve the control API of a supervisor with one idle job; yield its port."""
    config = jobs_from(
        f"""
        jobs:
          worker:
            command: {{child}} worker {settings.home / "record"}
            settle_time: 0.1
        """,
        settings,
    )
    async with running(config, settings) as supervisor:
        server = ControlServer(supervisor, TOKEN, lambda: None)
        port = await server.start("127.0.0.1", 0)
        try:
            yield port
        finally:
            await server.close()


async def raw_request(port: int, head: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send ``head`` (a request without its final blank line) on a fresh connection; return (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def status_ok(port: int) -> bool:
    """Return whether an authorised ``GET /status`` answers 200 with the envelope."""
    status, body = await raw_request(port, b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: " + GOOD)
    return status == 200 and json.loads(body)["ok"] is True


def test_a_non_utf8_authorization_header_is_401_not_500(pycron_settings: Settings) -> None:
    async def scenario() -> None:
        async with control_api(pycron_settings) as port:
            for value in (b"Bearer \xff\xfe\x80", b"\xc3\x28", GOOD + b"\xff", b"Bearer " + bytes(range(128, 256))):
                status, body = await raw_request(port, b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: " + value)
                assert status == 401, value
                assert json.loads(body)["error"]["code"] == "unauthorized"
            assert await status_ok(port)

    run(scenario())


def test_a_flood_of_refused_requests_logs_a_few_short_lines(
    pycron_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    requests, path = 300, b"/" + b"A" * 7000

    async def scenario() -> None:
        async with control_api(pycron_settings) as port:
            started = time.monotonic()
            for n in range(requests):
                status, _ = await raw_request(port, b"POST " + path + b"%d HTTP/1.1\r\nHost: x" % n)
                assert status == 401
            assert time.monotonic() - started < 20
            assert await status_ok(port)

    with caplog.at_level(logging.INFO, logger="pycron.api"):
        run(scenario(), timeout=60)
    refused = [r.getMessage() for r in caplog.records if r.name == "pycron.api" and "refused" in r.getMessage()]
    assert 1 <= len(refused) <= REFUSED_BURST  # one minute's worth: the rest are counted, not logged
    assert all(len(line) < 300 for line in refused), max(map(len, refused))


def test_oversized_and_malformed_headers_are_refused_and_the_api_still_answers(pycron_settings: Settings) -> None:
    bad: list[bytes] = [
        b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"x" * 64_000,
        b"GET /status HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(300)).rstrip(),
        b"GET /" + b"p" * 70_000 + b" HTTP/1.1\r\nHost: x",
        b"\x00\xff\xfe garbage \r\n",
        b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nAuthorization: " + GOOD,
    ]

    async def scenario() -> None:
        async with control_api(pycron_settings) as port:
            for head in bad:
                try:
                    status, _ = await raw_request(port, head)
                except (ConnectionError, IndexError, ValueError):
                    continue  # closed without an answer: refused as well
                assert 400 <= status < 500, (status, head[:40])
            assert await status_ok(port)

    run(scenario())


def test_stalled_connections_do_not_lock_out_the_owner(pycron_settings: Settings) -> None:
    stalled = 300

    async def scenario() -> None:
        async with control_api(pycron_settings) as port:
            held: list[Any] = []
            try:
                for n in range(stalled):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n" if n % 2 else b"GE")  # never finished
                    held.append(writer)
                await asyncio.sleep(0.2)
                started = time.monotonic()
                assert await status_ok(port)
                assert time.monotonic() - started < 2
            finally:
                for writer in held:
                    writer.close()

    run(scenario())


def test_a_flood_of_malformed_requests_logs_a_few_short_lines(
    pycron_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp logged each request it could not parse as an ERROR with a traceback (~650 bytes)."""
    bad = [b"\x00\xff garbage", b"GET /" + b"p" * 70_000 + b" HTTP/1.1\r\nHost: x",
           b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 64_000]

    async def scenario() -> None:
        async with control_api(pycron_settings) as port:
            for n in range(150):
                with contextlib.suppress(ConnectionError, IndexError, ValueError):
                    status, _ = await raw_request(port, bad[n % len(bad)])
                    assert status == 400
            assert await status_ok(port)

    with caplog.at_level(logging.DEBUG):
        run(scenario(), timeout=60)
    lines = [r for r in caplog.records if r.name.startswith(("aiohttp", "pycron.api.http"))]
    assert 1 <= len(lines) <= REFUSED_BURST, [r.getMessage()[:80] for r in lines]
    assert all(r.exc_info is None and len(r.getMessage()) < 300 for r in lines)


def test_a_connection_that_never_completes_a_request_is_closed(pycron_settings: Settings) -> None:
    """Idle after connect, or a request's head sent in part (slowloris): closed after the idle timeout."""
    config = jobs_from("jobs: {}\n", pycron_settings)

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            server = ControlServer(supervisor, TOKEN, lambda: None, idle_timeout=0.5)
            port = await server.start("127.0.0.1", 0)
            try:
                silent = await asyncio.open_connection("127.0.0.1", port)
                partial = await asyncio.open_connection("127.0.0.1", port)
                partial[1].write(b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: ")
                started = time.monotonic()
                for reader, _ in (silent, partial):
                    assert await asyncio.wait_for(reader.read(), 3) == b""
                assert time.monotonic() - started < 2
                for _, writer in (silent, partial):
                    writer.close()
                assert await status_ok(port)
            finally:
                await server.close()

    run(scenario())
