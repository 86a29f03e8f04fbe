"""Measurement helpers shared by the benchmarks: free loopback ports, percentiles, the host's steal time."""

from __future__ import annotations

import socket
from collections.abc import Sequence


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``samples``, nearest rank, no interpolation."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


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
