"""Fixtures for messaging tests: a bus proxy on ephemeral loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from trader.messaging import rpc, zmtp, zmtp_sockets
from trader.messaging.proxy import BusProxy


@pytest.fixture(autouse=True)
def fresh_log_throttles() -> None:
    """Let each test's first log line of a kind through, whatever an earlier test logged."""
    for module in (rpc, zmtp, zmtp_sockets):
        module._throttle.reset()
    rpc._per_caller.reset()
    rpc._errors.reset()


@pytest.fixture
def bus() -> Iterator[BusProxy]:
    """A running bus proxy bound to ephemeral ports on 127.0.0.1."""
    proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", max_frame_bytes=1024 * 1024)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def zctx() -> Iterator[zmq.Context]:
    """A private ZeroMQ context, terminated after the test."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)
