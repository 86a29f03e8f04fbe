"""What a process logs about what peers send: quoted clipped, repeated lines rate-limited.

A peer that sends garbage in a loop must not fill the disk with log lines
about it, nor with the garbage itself: ``clip`` bounds what is quoted from the
wire (a repr, so control characters cannot forge log lines), ``cut`` bounds an
error message that may quote it, and ``LogThrottle`` lets ``burst`` lines per
key through every ``interval`` seconds and counts the rest, so the next line
that goes out can say how many were suppressed. Every endpoint (the RPC, the
bus, pycron's API, tws-sim) uses these, so one test file covers them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CLIP", "LogThrottle", "clip", "cut"]

CLIP = 80  # characters of a peer's value that a log line or an error message quotes


def clip(value: Any, limit: int = CLIP) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters (a long value ends in ``...+<n> chars``).

    The repr escapes control characters, so a peer cannot forge log lines;
    a huge value is cut before it is formatted whole where that is cheap.
    """
    if isinstance(value, (str, bytes, bytearray)) and len(value) > 4 * limit:
        text = repr(value[: 4 * limit])
        return f"{text[:limit]}...+{len(value) - limit} chars"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...+{len(text) - limit} chars"


def cut(text: str, limit: int = 4 * CLIP) -> str:
    """Return ``text`` cut to ``limit`` characters (then ``...+<n> chars``), as an error message may quote it."""
    return text if len(text) <= limit else f"{text[:limit]}...+{len(text) - limit} chars"


class LogThrottle:
    """Let at most ``burst`` lines per key through in each ``interval`` seconds; count the rest.

    A window opens with the first line of a key let through and lasts
    ``interval`` seconds; ``burst=1`` is one line per interval. Use ``log``
    to log through the throttle (the line that goes out after suppressed ones
    says how many), or ``allow`` to decide and word the count yourself.
    """

    def __init__(self, logger: logging.Logger | None = None, *, burst: int = 1, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 256) -> None:
        self._log = logger
        self.burst, self.interval, self._clock = burst, interval, clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (window start, let through, suppressed)
        self.suppressed = 0  # lines suppressed so far, all keys

    def allow(self, key: str) -> int | None:
        """Return None to drop this line, or the number of lines of ``key`` dropped before it (a line to log)."""
        return self._allow(key, self._clock())[0]

    def log(self, level: int, key: str, msg: str, *args: Any, exc_info: BaseException | None = None) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` has had its burst in this window; True if logged.

        The line that goes out after suppressed ones ends with how many lines
        of its key were suppressed, and over how many seconds.
        """
        if self._log is None:
            raise TypeError("LogThrottle.log needs the logger given to LogThrottle(logger)")
        now = self._clock()
        dropped, since = self._allow(key, now)
        if dropped is None:
            return False
        if dropped:
            msg += " (%d more like this suppressed in the last %.0fs)"
            args = (*args, dropped, now - since)
        self._log.log(level, msg, *args, exc_info=exc_info)
        return True

    def reset(self) -> None:
        """Forget what was let through and suppressed (each key's next line goes out at once)."""
        self._windows.clear()
        self.suppressed = 0

    def _allow(self, key: str, now: float) -> tuple[int | None, float]:
        """Return (None or the count dropped before this line, when the previous window opened)."""
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self._max_keys:  # keys come from our code, but bound them anyway
                self._windows.clear()
            window = (now, 0, 0)
        start, passed, dropped = window
        previous = start
        if now - start >= self.interval:
            start, passed = now, 0
        if passed >= self.burst:
            self._windows[key] = (start, passed, dropped + 1)
            self.suppressed += 1
            return None, previous
        self._windows[key] = (start, passed + 1, 0)
        return dropped, previous
