"""Measurement helpers shared by the benchmarks: free loopback ports, server processes, RPC round trips, percentiles."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from trader.messaging.rpc import MethodRegistry, RpcClient, RpcServer


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``samples``, nearest rank, no interpolation."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def p50_p99_us(samples: Sequence[float]) -> tuple[float, float]:
    """Return the median and the 99th percentile of ``samples`` (seconds), in microseconds."""
    return percentile(samples, 0.5) * 1e6, percentile(samples, 0.99) * 1e6


@contextmanager
def server_process(target: Callable[..., None], *args: Any) -> Iterator[str]:
    """Run ``target(endpoint, *args, stop)`` in a child process on a free loopback port; yield the endpoint.

    On leaving, ``stop`` (an ``mp.Event``) is set and the child joined (10 s at most).
    """
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stop = mp.Event()
    proc = mp.Process(target=target, args=(endpoint, *args, stop))
    proc.start()
    try:
        yield endpoint
    finally:
        stop.set()
        proc.join(10)


async def serve_rpc(endpoint: str, registry: MethodRegistry, stop: Any) -> None:
    """Serve ``registry`` with an ``RpcServer`` on ``endpoint`` until ``stop`` (an ``mp.Event``) is set."""
    server = RpcServer(endpoint, registry)
    await server.start()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await server.close()


async def rpc_round_trips(endpoint: str, payload: Any, calls: int) -> list[float]:
    """Return the seconds of each of ``calls`` sequential ``echo(payload)`` calls through an ``RpcClient``.

    A first call, not counted, connects and checks the echo.
    """
    client = RpcClient(endpoint, timeout=10)
    assert await client.call("echo", payload) == payload
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await client.call("echo", payload)
        samples.append(time.perf_counter() - t0)
    client.close()
    return samples


def steal_ticks() -> int | None:
    """Return the steal time of this machine so far, in clock ticks (10 ms); None where it is not counted.

    Steal time (``/proc/stat``) is time the hypervisor gave a CPU of this VM to
    someone else while it had work: a latency measured across it is the host's.
    """
    try:
        with open("/proc/stat", "rb") as stat:
            return int(stat.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return None
