"""Rate-limited logging of what peers send: one line per kind per interval, then a count of the rest.

A peer that sends garbage in a loop must not fill the disk with log lines
about it, nor with the garbage itself: ``clip`` bounds what is quoted from the
wire, and ``LogThrottle`` lets one line per kind through every ``interval``
seconds; the next line of that kind says how many were suppressed meanwhile.
"""

from __future__ import annotations

import logging
import time
from typing import Any

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
    """Let one log line of each kind through per ``interval`` seconds; count the others."""

    def __init__(self, logger: logging.Logger, interval: float = 5.0, max_kinds: int = 256) -> None:
        self._log = logger
        self.interval = interval
        self._max_kinds = max_kinds
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.suppressed = 0  # lines suppressed so far, all kinds

    def log(self, level: int, kind: str, msg: str, *args: Any, exc_info: BaseException | None = None) -> bool:
        """Log ``msg % args`` at ``level`` unless a line of ``kind`` went out within ``interval``; True if logged.

        The line that goes out after a quiet spell ends with the number of
        lines of its kind suppressed since the last one.
        """
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            self.suppressed += 1
            return False
        if last is None and len(self._last) >= self._max_kinds:  # kinds come from our code, but bound them anyway
            self._last.clear()
            self._suppressed.clear()
        self._last[kind] = now
        skipped = self._suppressed.pop(kind, 0)
        if skipped:
            msg += " (%d more like this suppressed in the last %.0fs)"
            args = (*args, skipped, now - last if last is not None else 0.0)
        self._log.log(level, msg, *args, exc_info=exc_info)
        return True

    def reset(self) -> None:
        """Forget what was logged and suppressed (each kind's next line goes out at once)."""
        self._last.clear()
        self._suppressed.clear()
        self.suppressed = 0
