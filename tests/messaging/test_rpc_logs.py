"""What the RPC server logs about what peers send, on 127.0.0.1: clipped whatever the exception, throttled per caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.messaging.test_rpc_fuzz import Switch
from tests.messaging.test_zmtp import _closed_by_server, _greeting, _raw
from trader.errors import InternalError, MethodNotFound
from trader.messaging.rpc import MethodRegistry, RpcClient, RpcServer

T = 10.0
HUGE = 8_000_000


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Every log line of the test (INFO and up) written to a file, as a service's log is."""
    path = tmp_path / "svc.log"
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def test_an_exception_quoting_a_huge_argument_is_logged_clipped_with_its_stack(log_file: Path) -> None:
    """A method's bug whose message quotes the caller's 8 MB argument was logged whole, traceback and all."""

    def parse(text: str) -> int:
        raise ValueError(f"cannot parse {text!r}")  # a bug, but its message quotes the whole argument

    async def scenario() -> None:
        registry = MethodRegistry()
        registry.register("parse", parse)
        server = RpcServer("tcp://127.0.0.1:0", registry)
        await server.start()
        client = RpcClient(server.endpoint, timeout=T)
        try:
            with pytest.raises(InternalError, match=r"ValueError: cannot parse 'xxx.*\.\.\.\+\d+ chars"):
                await client.call("parse", "x" * HUGE)
        finally:
            client.close()
            await server.close()

    asyncio.run(scenario())
    text = log_file.read_text()
    assert 0 < len(text) < 4096, len(text)
    assert "ValueError: cannot parse 'xxx" in text and "in parse" in text and "raise ValueError" in text


def test_a_huge_socket_type_in_ready_is_logged_clipped(log_file: Path) -> None:
    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry())
        await server.start()
        try:
            kind = b"K" * 60_000
            body = b"\x05READY" + b"\x0bSocket-Type" + len(kind).to_bytes(4, "big") + kind
            reader, _ = await _raw(server.endpoint, _greeting() + b"\x06" + len(body).to_bytes(8, "big") + body)
            assert await _closed_by_server(reader)
        finally:
            await server.close()

    asyncio.run(scenario())
    text = log_file.read_text()
    assert "cannot talk to ROUTER" in text and 0 < len(text) < 2048, len(text)


def test_one_callers_flood_of_errors_does_not_hide_anothers_first(caplog: pytest.LogCaptureFixture) -> None:
    """The throttle was keyed by error code alone: a second caller's first error went unlogged for 5 s."""
    caplog.set_level(logging.WARNING, "trader.messaging.rpc")

    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry())
        await server.start()
        noisy, other = RpcClient(server.endpoint, timeout=T), RpcClient(server.endpoint, timeout=T)
        try:
            for client, times in ((noisy, 50), (other, 1)):
                for _ in range(times):
                    with pytest.raises(MethodNotFound):
                        await client.call("nope")
        finally:
            noisy.close()
            other.close()
            await server.close()

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "'nope'" in r.getMessage()]
    assert len(lines) == 2, lines  # the noisy caller's first, then the other's first
    assert lines[0].split(" from ")[1].split(" ")[0] != lines[1].split(" from ")[1].split(" ")[0]
