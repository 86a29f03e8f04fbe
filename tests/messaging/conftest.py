"""Fixtures for messaging tests: a bus proxy on ephemeral loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from trader.messaging.proxy import BusProxy


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
