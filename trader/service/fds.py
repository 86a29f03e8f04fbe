"""File descriptors: the open-file limit raised at start, the RPC's connections kept under it, EMFILE logged sparingly.

Each RPC connection holds a descriptor. A server whose ``max_connections``
reaches the process's open-file limit runs out of descriptors before it
starts evicting idle connections, and then refuses everyone, the operator's
``trader kill-switch`` included, while the loop logs a traceback for every
accept that failed. So a service raises its soft limit to the hard one at
start, keeps ``max_connections`` under the limit by ``FD_RESERVE`` (the
bus, Redis, the broker, log files), and logs failed accepts through a
``LogThrottle``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from trader.peer_text import LogThrottle

__all__ = ["FD_RESERVE", "connection_cap", "raise_fd_limit", "throttle_accept_errors"]

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, interval=10.0)

FD_RESERVE = 64  # descriptors kept for everything but RPC connections
_UNLIMITED_TARGET = 1 << 20  # a hard limit of "unlimited": Linux caps the soft one at fs.nr_open (2**20 by default)
_ACCEPT_FAILED = "socket.accept() out of system resource"


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (logged); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit left at %d (hard %s): %s", soft, hard, exc)
            return soft
        log.info("open-file limit raised from %d to %d", soft, target)
        return target
    return soft


def connection_cap(wanted: int, reserve: int = FD_RESERVE) -> int:
    """Return ``wanted`` connections, or fewer: the soft open-file limit less ``reserve`` (at least 1), logged."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    cap = max(1, soft - reserve)
    if wanted > cap:
        log.warning("RPC max_connections lowered from %d to %d: the open-file limit is %d and %d descriptors are "
                    "kept for the rest (raise the hard limit, e.g. LimitNOFILE, to allow more)", wanted, cap, soft,
                    reserve)
        return cap
    log.info("RPC max_connections %d (open-file limit %d)", wanted, soft)
    return wanted


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` log a failed accept (out of descriptors) at most once every 10 s, without its traceback."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith(_ACCEPT_FAILED):
            _throttle.log(logging.ERROR, "accept", "%s: %s (open-file limit %d)", message, context.get("exception"),
                          resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
