"""The open-file limit: raised at start, and the RPC's connections kept under it, so a flood cannot starve accept().

A server run in a child process under a low limit (the child sets it before
anything else), flooded with more idle connections than the limit: a real client
call still gets through.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.messaging.test_rpc_fuzz import _handshake
from trader.messaging.rpc import RpcClient
from trader.service.fds import FD_RESERVE

T = 10.0
CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[3]), int(sys.argv[4])))  # before anything opens a file

import asyncio, logging
from trader.messaging.rpc import MethodRegistry, RpcServer
from trader.service.base import loop_runner
from trader.service.fds import connection_cap, raise_fd_limit, throttle_accept_errors

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")

async def main():
    raise_fd_limit()  # as trader.service.base.main does, then Service.run
    throttle_accept_errors(asyncio.get_running_loop())
    registry = MethodRegistry()
    registry.register("ping", lambda: "pong")
    server = RpcServer("tcp://127.0.0.1:0", registry, max_connections=connection_cap(int(sys.argv[2])))
    await server.start()
    print(server.endpoint, flush=True)
    await asyncio.Event().wait()

loop_runner(sys.argv[1])(main())
"""


@contextmanager
def _server(soft: int, hard: int, event_loop: str = "uvloop",
            max_connections: int = 1024) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A child RPC server that sets RLIMIT_NOFILE (soft, hard) first thing; yield its endpoint and the process."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, event_loop, str(max_connections), str(soft), str(hard)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        endpoint = child.stdout.readline().strip()
        assert endpoint.startswith("tcp://"), child.stderr.read() if child.stderr else ""
        yield endpoint, child
    finally:
        child.terminate()
        child.wait(T)


def _call(endpoint: str) -> str:
    async def call() -> str:
        client = RpcClient(endpoint, timeout=T)
        try:
            return str(await client.call("ping"))
        finally:
            client.close()

    return asyncio.run(call())


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(("soft", "hard", "idle"), [(160, 160, 200), (128, 512, 300)])
def test_a_call_gets_through_with_more_idle_connections_than_the_open_file_limit(soft: int, hard: int, idle: int,
                                                                                 event_loop: str) -> None:
    """At max_connections 1024 under a limit of 1024, a flood exhausted the descriptors before any eviction."""
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 2 * idle + 100, "the test process needs the descriptors"
    with _server(soft, hard, event_loop) as (endpoint, child):
        port = int(endpoint.rsplit(":", 1)[1])
        flood: list[socket.socket] = []
        try:
            for _ in range(idle):
                flood.append(_handshake(port))
            assert _call(endpoint) == "pong"
        finally:
            for sock in flood:
                sock.close()
        child.terminate()
        _, stderr = child.communicate(timeout=T)
    if soft == hard:  # nothing to raise: the connections are clamped under the limit
        assert f"max_connections lowered from 1024 to {soft - FD_RESERVE}" in stderr, stderr
    else:
        assert f"open-file limit raised from {soft} to {hard}" in stderr, stderr
    assert "out of system resource" not in stderr and "Traceback" not in stderr, stderr[-2000:]


def test_failed_accepts_are_logged_sparingly() -> None:
    """Out of descriptors anyway (the reserve used up by the test), the loop logged a traceback per failed accept."""
    soft = 100
    with _server(soft, soft, "asyncio", max_connections=soft - FD_RESERVE) as (endpoint, child):
        port = int(endpoint.rsplit(":", 1)[1])
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]  # no handshake: held 10 s
        try:
            deadline = time.monotonic() + 3  # asyncio retries a failed accept every second
            while time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            for sock in flood:
                sock.close()
        child.terminate()
        _, stderr = child.communicate(timeout=T)
    print(f"\n{len(stderr)} bytes of stderr, {stderr.count('out of system resource')} lines of failed accepts")
    assert 1 <= stderr.count("out of system resource") <= 2 and stderr.count("Traceback") == 0, stderr[-3000:]
